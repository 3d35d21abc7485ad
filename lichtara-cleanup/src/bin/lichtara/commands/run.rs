//! `lichtara run`: a foreground supervisor for containers and terminals.
//! It becomes a child subreaper, so every descendant that loses its parent
//! is re-parented to it; forwards signals to the command's process group;
//! reaps zombies; and when the command ends, ends whatever is left before
//! exiting with the command's status. Nothing it started outlives it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

use rustix::process::{
    Pid, Signal, WaitOptions, getpid, kill_process_group, set_child_subreaper, wait,
};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Ready;
use crate::containment::{self, Containment, Leaf};
use crate::listeners::{Handoff, Held};
use crate::ownership::{self, Claim, Proof};
use crate::project::{MARKER_VAR, Project};
use crate::record::{self, Liveness, Record};
use crate::watch::Watcher;
use crate::{Failure, procfs, terminate};

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    timeout: Option<Duration>,
    listen: &[String],
    watch: &[PathBuf],
    command: &[String],
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let service = project.service(&name);
    let command = service.command(command)?;
    let timeout = service.stop_timeout(timeout)?;
    let declared = service.listeners(listen)?;
    let ready = service.ready(None)?;
    let grace = service.start_grace()?;
    let ready_timeout = service.ready_timeout(None)?;
    // Under systemd (`Type=notify`, `lichtara unit`): a service that says
    // READY=1 itself is given the socket (the unit allows its processes
    // to); otherwise this run says it, once the service is ready.
    let systemd = crate::systemd::socket();
    let pass_socket = systemd.is_some() && ready == Ready::Notify;
    let me = std::process::id() as i32;
    let marker = format!("{}/{name}/run-{me}", project.id);
    if std::env::var_os(MARKER_VAR).is_none_or(|value| value != *marker) {
        // This process leads the run and is what its record names, so it
        // must carry the marker too (`stop` proves the leader by it): the
        // same binary again, in this same process (exec keeps the PID),
        // with the marker set, before anything is locked or written.
        return Err(reexec_marked(&marker));
    }
    let state = project.state_dir()?;
    let pid_path = record::pid_path(&state, &name);
    let Some(lock) = record::lock(&state, &name)? else {
        return Err(Failure::new(format!("`{name}` is already running")));
    };
    if let Some(existing) = record::read(&pid_path)? {
        match existing.liveness(project, &name) {
            Liveness::Running(_) => {
                return Err(Failure::new(format!(
                    "`{name}` is already running (pid {})",
                    existing.pid
                )));
            }
            Liveness::Stale(_) | Liveness::Foreign(_) => record::remove(&pid_path)?,
            Liveness::Refused(why) => {
                return Err(Failure::refused(format!(
                    "{}: {why}; nothing was signalled. Inspect it, then remove the PID file",
                    pid_path.path().display()
                )));
            }
        }
    }
    // Held for the whole run: a restart (`--watch`) never refuses a
    // connection, nor finds the port taken.
    let held = Held::bind_all(project, &declared)?;
    if !held.is_empty() {
        let pairs: Vec<String> = held.iter().map(|held| held.declared.pair()).collect();
        note!("holding {} for the whole run", pairs.join(", "));
    }
    let watcher = if watch.is_empty() {
        None
    } else {
        Some(Watcher::new(&project.dir, watch)?)
    };
    let handoff = if held.is_empty() {
        None
    } else {
        let socket = systemd
            .as_ref()
            .filter(|_| pass_socket)
            .and_then(|socket| socket.to_str());
        let env = crate::listeners::service_environment(service.env(), &marker, socket);
        Some(std::sync::Arc::new(Handoff::new(
            &project.dir,
            &command[0],
            &command,
            &env,
            &held,
            -1,
        )?))
    };
    let containment = Containment::of(project, &name, true);
    let cgroup_procs =
        match &containment {
            Containment::Cgroup(leaf) if leaf.populated() => {
                return Err(containment::still_populated(leaf, &name));
            }
            Containment::Cgroup(leaf) => Some(leaf.procs_for_entry().map_err(|err| {
                Failure::new(format!("cannot enter {}: {err}", leaf.path.display()))
            })?),
            Containment::GroupAndMarker(_) => None,
        };
    // However this run ends, early or not, its cgroup goes with it.
    let _remove_leaf = RemoveLeaf(match &containment {
        Containment::Cgroup(leaf) => Some(leaf.clone()),
        Containment::GroupAndMarker(_) => None,
    });
    set_child_subreaper(Some(getpid()))
        .map_err(|err| Failure::new(format!("cannot become a child subreaper: {err}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Failure::new(format!("cannot start the supervisor: {err}")))?;
    let status = runtime.block_on(async {
        // Registered before the command starts, so no SIGCHLD is missed.
        let mut signals =
            Signals::new().map_err(|err| Failure::new(format!("cannot handle signals: {err}")))?;
        // The record exists before the command starts, so nothing the
        // command does can be seen before `status` sees the service; the
        // group is filled in once the command has one.
        let mut record = Record {
            name: name.clone(),
            pid: me,
            pgid: me,
            start_time: procfs::stat(me).map(|stat| stat.start_time).unwrap_or(0),
            boot_id: procfs::boot_id().unwrap_or_default(),
            command: command.clone(),
            started_at: super::now_secs(),
            marker: marker.clone(),
            uid: Some(crate::ownership::current_uid()),
            supervisor: None,
        };
        record::write(&pid_path, &record)?;
        let spawn = || -> Result<i32, Failure> {
            let mut child = Command::new(&command[0]);
            child
                .args(&command[1..])
                .current_dir(&project.dir)
                .envs(service.env())
                .env(MARKER_VAR, &marker)
                .process_group(0);
            for var in crate::listeners::PROTOCOL_VARS {
                child.env_remove(var);
            }
            if pass_socket && let Some(socket) = &systemd {
                child.env("NOTIFY_SOCKET", socket);
            }
            let cgroup_fd = cgroup_procs.as_ref().map(std::os::fd::AsRawFd::as_raw_fd);
            let handoff = handoff.clone();
            let fillers = handoff.as_deref().map(Handoff::reserve);
            // SAFETY: only write(2) of "0" to the leaf's cgroup.procs runs
            // between fork and exec (async-signal-safe), so that the
            // command and everything it forks live in the leaf; and, with
            // listeners, `Handoff::apply` (fcntl, dup2, getpid, execve).
            unsafe {
                child.pre_exec(move || {
                    if let Some(procs) = cgroup_fd {
                        containment::enter(std::os::fd::BorrowedFd::borrow_raw(procs))?;
                    }
                    if let Some(handoff) = &handoff {
                        return Err(handoff.apply());
                    }
                    Ok(())
                });
            }
            let spawned = child
                .spawn()
                .map_err(|err| Failure::new(format!("cannot start `{}`: {err}", command[0])));
            drop(fillers);
            Ok(spawned?.id() as i32)
        };
        let mut changes = watcher.map(|mut watcher| {
            let (changed, changes) = tokio::sync::mpsc::unbounded_channel();
            // A thread of its own blocks on the watches.
            std::thread::spawn(move || {
                while let Some(path) = watcher.next_change() {
                    if changed.send(path).is_err() {
                        break;
                    }
                }
            });
            changes
        });
        let mut first = true;
        // Set once the command has ended (by itself or stopped).
        let ended = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let status = loop {
            if let Some(changes) = changes.as_mut() {
                // Changes made while the old process stopped are seen by
                // the new one: none of them restarts it again.
                while changes.try_recv().is_ok() {}
            }
            let child = match spawn() {
                Ok(child) => child,
                Err(failure) if first => {
                    let _ = record::remove(&pid_path);
                    return Err(failure);
                }
                Err(failure) => {
                    // A rebuild may have removed the program for a moment:
                    // the next change tries again.
                    let Some(changes) = changes.as_mut() else {
                        let _ = record::remove(&pid_path);
                        return Err(failure);
                    };
                    note!("{}; waiting for a change to try again", failure.message());
                    match wait_for_change(changes, &mut signals).await {
                        Some(path) => {
                            note!("{} changed: starting it again", path.display());
                            continue;
                        }
                        None => break 1,
                    }
                }
            };
            if first && systemd.is_some() && !pass_socket {
                crate::systemd::ready_when(ready, grace, ready_timeout, ended.clone());
            }
            first = false;
            record.pgid = child;
            record::write(&pid_path, &record)?;
            let supervised = supervise(child, &mut signals, timeout, changes.as_mut()).await;
            ended.store(true, std::sync::atomic::Ordering::Release);
            match supervised {
                Ended::Stopped(status) => break status,
                Ended::ByItself(status) => {
                    let Some(changes) = changes.as_mut() else {
                        break status;
                    };
                    note!(
                        "`{}` exited ({}); waiting for a change to start it again",
                        command.join(" "),
                        describe_code(status)
                    );
                    match wait_for_change(changes, &mut signals).await {
                        Some(path) => note!("{} changed: starting it again", path.display()),
                        None => break status,
                    }
                }
                Ended::Changed(path, status) => {
                    // Whatever the old run left in its cgroup goes too,
                    // before the new one starts in it.
                    if let Containment::Cgroup(leaf) = &containment
                        && leaf.populated()
                    {
                        let _ = leaf.kill();
                        leaf.wait_empty(terminate::KILL_WAIT);
                    }
                    reap_all();
                    note!(
                        "{} changed: the old process ended ({}); starting `{}` again",
                        path.display(),
                        describe_code(status),
                        command.join(" ")
                    );
                }
            }
        };
        Ok::<_, Failure>(status)
    })?;
    // The command is gone; end what it left behind: everything re-parented
    // to us, and anything else that carries this run's marker.
    let all = procfs::all_stats().unwrap_or_default();
    // Descendants are ours by parentage (re-parented to this subreaper);
    // the rest must prove the run's marker.
    let mut leftovers: Vec<_> = procfs::descendants(me, &all)
        .into_iter()
        .filter_map(|pid| all.iter().find(|stat| stat.pid == pid))
        .filter_map(|stat| ownership::pin_descendant(stat.pid, stat.start_time))
        .collect();
    let leaf = match &containment {
        Containment::Cgroup(leaf) => Some(leaf),
        Containment::GroupAndMarker(_) => None,
    };
    let claim = Claim {
        marker: &marker,
        leaf,
        uid: ownership::current_uid(),
    };
    // What is left in the command's cgroup: a daemon that cleared its
    // environment and left the session is there too.
    for pid in leaf.map(Leaf::members).unwrap_or_default() {
        if leftovers.iter().any(|p| p.pid == pid) {
            continue;
        }
        let Ok(stat) = procfs::stat(pid) else {
            continue;
        };
        match ownership::prove(pid, stat.start_time, claim) {
            Proof::Proven(pinned) => leftovers.push(pinned),
            Proof::Gone => {}
            // Ended with the cgroup below, whatever it runs as.
            Proof::Refused(_) => {}
        }
    }
    for process in super::marked(&marker, &all) {
        if process.marker == marker && !leftovers.iter().any(|p| p.pid == process.stat.pid) {
            match ownership::prove(process.stat.pid, process.stat.start_time, claim) {
                Proof::Proven(pinned) => leftovers.push(pinned),
                Proof::Gone => {}
                Proof::Refused(refusal) => note!("left alone: {refusal}"),
            }
        }
    }
    if !leftovers.is_empty() {
        note!(
            "ending {} process(es) the command left behind",
            leftovers.len()
        );
        terminate::terminate(leftovers, Signal::TERM, timeout);
    }
    if let Some(leaf) = leaf {
        if leaf.populated() {
            let _ = leaf.kill();
        }
        leaf.wait_empty(terminate::KILL_WAIT);
        reap_all();
        leaf.remove();
    }
    reap_all();
    record::remove(&pid_path)?;
    drop(lock);
    Ok(ExitCode::from(status))
}

/// Removes the run's cgroup when dropped, once it is empty (on every way
/// out of `run`, an early error included).
struct RemoveLeaf(Option<Leaf>);

impl Drop for RemoveLeaf {
    fn drop(&mut self) {
        if let Some(leaf) = &self.0
            && !leaf.populated()
        {
            leaf.remove();
        }
    }
}

/// Replaces this process with the same command line, `MARKER_VAR` set to
/// `marker`; returns only if that failed.
fn reexec_marked(marker: &str) -> Failure {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return Failure::new(format!("cannot find this program to mark it: {err}")),
    };
    let err = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(MARKER_VAR, marker)
        .exec();
    Failure::new(format!("cannot re-run itself with the marker: {err}"))
}

/// The signals the supervisor forwards, and SIGCHLD.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
            child: signal(SignalKind::child())?,
        })
    }
}

/// How the command's process ended.
enum Ended {
    /// After a signal was forwarded to it: `run` exits with its status.
    Stopped(u8),
    /// On its own.
    ByItself(u8),
    /// Ended by `run` because a watched path changed.
    Changed(PathBuf, u8),
}

/// Waits for the command to end, forwarding signals to its group; after a
/// forwarded signal it has `timeout` before SIGKILL. With `changes`
/// (`--watch`), a change ends it the same way, to be started again. The
/// status is the command's exit code, or 128+N if a signal N ended it.
async fn supervise(
    child: i32,
    signals: &mut Signals,
    timeout: Duration,
    mut changes: Option<&mut tokio::sync::mpsc::UnboundedReceiver<PathBuf>>,
) -> Ended {
    let group = Pid::from_raw(child).expect("a child has a pid");
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut forwarded = false;
    let mut changed: Option<PathBuf> = None;
    loop {
        if let Some(status) = reap(child) {
            return match (forwarded, changed) {
                (true, _) => Ended::Stopped(status),
                (false, Some(path)) => Ended::Changed(path, status),
                (false, None) => Ended::ByItself(status),
            };
        }
        let watching = changed.is_none() && !forwarded;
        let forward = tokio::select! {
            _ = signals.child.recv() => None,
            _ = signals.term.recv() => Some(Signal::TERM),
            _ = signals.int.recv() => Some(Signal::INT),
            _ = signals.hup.recv() => Some(Signal::HUP),
            _ = signals.quit.recv() => Some(Signal::QUIT),
            Some(path) = next_change(changes.as_deref_mut()), if watching => {
                changed = Some(path);
                let _ = kill_process_group(group, Signal::TERM);
                kill_at.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
                None
            }
            () = sleep_until(kill_at) => {
                // The command did not end in time: the whole group goes.
                let _ = kill_process_group(group, Signal::KILL);
                kill_at = None;
                None
            }
        };
        if let Some(signal) = forward {
            forwarded = true;
            // The child is unreaped, so its PID (and group id) is still ours.
            let _ = kill_process_group(group, signal);
            kill_at.get_or_insert_with(|| tokio::time::Instant::now() + timeout);
        }
    }
}

/// The next change of the watched paths (never, without any).
async fn next_change(
    changes: Option<&mut tokio::sync::mpsc::UnboundedReceiver<PathBuf>>,
) -> Option<PathBuf> {
    match changes {
        Some(changes) => changes.recv().await,
        None => std::future::pending().await,
    }
}

/// Between two runs of the command (`--watch`, after it exited by
/// itself): the next change, or `None` when a stop signal came.
async fn wait_for_change(
    changes: &mut tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    signals: &mut Signals,
) -> Option<PathBuf> {
    loop {
        tokio::select! {
            path = changes.recv() => return path,
            _ = signals.term.recv() => return None,
            _ = signals.int.recv() => return None,
            _ = signals.hup.recv() => return None,
            _ = signals.quit.recv() => return None,
            // What the old run left re-parented here.
            _ = signals.child.recv() => reap_all(),
        }
    }
}

/// `exit code 3`, `signal 15`, from a status as `run` passes it on.
fn describe_code(status: u8) -> String {
    match status {
        129..=192 => format!("signal {}", status - 128),
        code => format!("exit code {code}"),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reaps every exited child without blocking; returns the command's exit
/// code once it has been reaped.
fn reap(child: i32) -> Option<u8> {
    let mut result = None;
    while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
        if pid.as_raw_nonzero().get() == child {
            let code = match (status.exit_status(), status.terminating_signal()) {
                (Some(code), _) => code,
                (None, Some(signal)) => 128 + signal,
                _ => 1,
            };
            result = Some(u8::try_from(code & 0xff).unwrap_or(1));
        }
    }
    result
}

/// Reaps the last zombies (ended descendants re-parented to us).
fn reap_all() {
    while let Ok(Some(_)) = wait(WaitOptions::NOHANG) {}
}
