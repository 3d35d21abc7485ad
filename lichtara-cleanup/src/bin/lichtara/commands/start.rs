//! `lichtara start`: detached, in its own session and group, marked,
//! logged, recorded and locked.

use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use crate::containment::{self, Containment};
use crate::project::{MARKER_VAR, Project};
use crate::record::{self, Liveness, Record};
use crate::state::Access;
use crate::{Failure, procfs};

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let command = project.command(command)?;
    let pid = start(project, &name, &command)?;
    say!("{pid}");
    Ok(ExitCode::SUCCESS)
}

/// Starts `command` as service `name`; returns its PID.
pub(crate) fn start(project: &Project, name: &str, command: &[String]) -> Result<i32, Failure> {
    let state = project.state_dir()?;
    let pid_path = record::pid_path(&state, name);
    let existing = record::read(&pid_path)?;
    let Some(lock) = record::lock(&state, name)? else {
        return Err(match existing {
            Some(record) if matches!(record.liveness(project, name), Liveness::Running(_)) => {
                Failure::new(format!("`{name}` is already running (pid {})", record.pid))
            }
            _ => Failure::new(format!(
                "`{name}` is locked by processes of an earlier run{}; see `lichtara cleanup --dry-run`",
                procfs::holders(record::lock_path(&state, name).path())
                    .iter()
                    .map(|pid| format!(" (pid {pid}: `{}`)", procfs::cmdline(*pid)))
                    .collect::<String>()
            )),
        });
    };
    if let Some(record) = existing {
        match record.liveness(project, name) {
            Liveness::Running(_) => {
                return Err(Failure::new(format!(
                    "`{name}` is already running (pid {})",
                    record.pid
                )));
            }
            Liveness::Stale(why) => {
                note!("removing the stale PID file of `{name}` ({why}); nothing was signalled");
                record::remove(&pid_path)?;
            }
            Liveness::Foreign(why) => {
                note!(
                    "replacing a PID file that is not this project's ({why}); nothing was signalled"
                );
                record::remove(&pid_path)?;
            }
            Liveness::Refused(why) => {
                return Err(Failure::refused(format!(
                    "{}: {why}; nothing was signalled. Inspect it, then remove the PID file",
                    pid_path.path().display()
                )));
            }
        }
    }
    let log_path = record::log_path(&state, name);
    let log = log_path
        .open(Access::Append, "write")?
        .ok_or_else(|| Failure::new(format!("cannot create {}", log_path.path().display())))?;
    // Regular files ignore O_NONBLOCK; the service gets a plain descriptor.
    rustix::fs::fcntl_setfl(&log, rustix::fs::OFlags::APPEND)
        .map_err(|err| Failure::new(format!("{}: {err}", log_path.path().display())))?;
    let log_err = log
        .try_clone()
        .map_err(|err| Failure::new(format!("cannot open {}: {err}", log_path.path().display())))?;
    let marker = format!("{}/{name}/{}", project.id, instance_token());
    let containment = Containment::of(project, name, true);
    let cgroup_procs =
        match &containment {
            Containment::Cgroup(leaf) if leaf.populated() => {
                return Err(containment::still_populated(leaf, name));
            }
            Containment::Cgroup(leaf) => Some(leaf.procs_for_entry().map_err(|err| {
                Failure::new(format!("cannot enter {}: {err}", leaf.path.display()))
            })?),
            Containment::GroupAndMarker(_) => None,
        };
    let cgroup_fd = cgroup_procs.as_ref().map(|file| file.as_raw_fd());
    let lock_fd = lock.file.as_raw_fd();
    let mut child = Command::new(&command[0]);
    child
        .args(&command[1..])
        .current_dir(&project.dir)
        .envs(&project.settings.env)
        .env(MARKER_VAR, &marker)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    // SAFETY: between fork and exec only async-signal-safe system calls
    // run: setsid(2); write(2) of "0" to the leaf's cgroup.procs, so that
    // the service and everything it ever forks live in its cgroup; and
    // fcntl(2) to let the service inherit the lock so that it holds it for
    // as long as it lives.
    unsafe {
        child.pre_exec(move || {
            rustix::process::setsid()?;
            if let Some(procs) = cgroup_fd {
                containment::enter(std::os::fd::BorrowedFd::borrow_raw(procs))?;
            }
            let fd = std::os::fd::BorrowedFd::borrow_raw(lock_fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    let mut child = child
        .spawn()
        .map_err(|err| Failure::new(format!("cannot start `{}`: {err}", command[0])))?;
    let pid = child.id() as i32;
    // Watch for an immediate death, by the kernel's word (pidfd), not by
    // sleeping and looking.
    let grace = project.start_grace()?;
    if let Ok(pidfd) = pidfd_open(
        Pid::from_raw(pid).expect("a child has a pid"),
        PidfdFlags::empty(),
    ) {
        let timespec = rustix::time::Timespec {
            tv_sec: grace.as_secs() as i64,
            tv_nsec: i64::from(grace.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        if poll(&mut fds, Some(&timespec)).unwrap_or(0) > 0 {
            let status = child
                .wait()
                .map_err(|err| Failure::new(format!("wait for `{}`: {err}", command[0])))?;
            let how = match (status.code(), status.signal()) {
                (Some(code), _) => format!("exit code {code}"),
                (None, Some(signal)) => format!("signal {signal}"),
                _ => status.to_string(),
            };
            return Err(Failure::new(format!(
                "`{}` ended at once ({how}); see {}",
                command.join(" "),
                log_path.path().display()
            )));
        }
    }
    // From here on a failure must not leave the service running with no
    // record: it is ended (our own unreaped child, and its cgroup), then
    // the failure is reported.
    let recorded = (|| {
        let stat = procfs::stat(pid)
            .map_err(|err| Failure::new(format!("cannot read /proc/{pid}: {err}")))?;
        let record = Record {
            name: name.to_owned(),
            pid,
            pgid: pid,
            start_time: stat.start_time,
            boot_id: procfs::boot_id()
                .map_err(|err| Failure::new(format!("cannot read the boot id: {err}")))?,
            command: command.to_vec(),
            started_at: super::now_secs(),
            marker,
            uid: Some(crate::ownership::current_uid()),
        };
        record::write(&pid_path, &record)
    })();
    if let Err(failure) = recorded {
        let _ = child.kill();
        let _ = child.wait();
        if let Containment::Cgroup(leaf) = &containment {
            let _ = leaf.kill();
            leaf.wait_empty(crate::terminate::KILL_WAIT);
            leaf.remove();
        }
        return Err(Failure::new(format!(
            "{}; `{name}` was ended, not left running unrecorded",
            failure.message()
        )));
    }
    note!(
        "started `{name}` (pid {pid}), contained by {}",
        containment.describe()
    );
    // The service holds its inherited copy of the lock; ours closes here.
    drop(lock);
    Ok(pid)
}

/// Tells one run of a service from the next.
fn instance_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}", nanos ^ (u64::from(std::process::id()) << 40))
}
