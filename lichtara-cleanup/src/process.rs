//! Children that cannot outlive the service (feature `process`, Unix).
//!
//! [`spawn`] takes a `tokio::process::Command` — every option of it stays
//! yours — and ties the child to the service:
//!
//! - the child leads its own process group, so it and its descendants are
//!   signalled together;
//! - on Linux it gets `PR_SET_PDEATHSIG` (SIGKILL), so it dies even if the
//!   service is SIGKILLed. The kernel sends that signal when the *thread*
//!   that forked the child exits, and tokio's blocking threads exit when
//!   idle: lichtara therefore forks every child from one thread that lives
//!   as long as the process;
//! - at shutdown each child is a hook of its own (phase 0, 5 s by default;
//!   see [`Spawner`]): SIGTERM to its group, a bounded wait, SIGKILL to the
//!   group, reaped. A child that needed SIGKILL is reported as an error.
//!
//! PDEATHSIG reaches the child only; its own descendants die with it when
//! the service shuts down gracefully (the group is signalled), but not when
//! the service is SIGKILLed — run such trees under `lichtara run`, or make
//! the child forward its own death.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mut command = tokio::process::Command::new("sh");
//! command.args(["-c", "sleep 300 & wait"]);
//! let child = lichtara::process::spawn(command).await?;
//! println!("worker {}", child.id());
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::hook::{Hook, HookKind, HookMeta, HookRunner};

/// How children are stopped at shutdown.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::time::Duration;
///
/// let child = lichtara::process::Spawner::new()
///     .order(2)
///     .timeout(Duration::from_secs(3))
///     .spawn(tokio::process::Command::new("my-worker"))
///     .await?;
/// # let _ = child;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
#[must_use]
pub struct Spawner {
    order: i32,
    timeout: Duration,
}

impl Default for Spawner {
    fn default() -> Self {
        Self::new()
    }
}

impl Spawner {
    /// Phase 0, 5 s from SIGTERM to SIGKILL.
    pub fn new() -> Self {
        Self {
            order: 0,
            timeout: Duration::from_secs(5),
        }
    }

    /// The phase in which the child is stopped.
    pub fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// How long the child gets after SIGTERM before SIGKILL.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Spawns `command` tied to the service.
    ///
    /// # Errors
    ///
    /// As `tokio::process::Command::spawn` (the program does not exist, …).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it returns, a child
    /// already started for it is killed with its process group and reaped,
    /// never left running untracked.
    pub async fn spawn(self, mut command: tokio::process::Command) -> io::Result<Child> {
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        command.process_group(0);
        #[cfg(target_os = "linux")]
        {
            let parent = std::process::id();
            // SAFETY: between fork and exec only prctl(2) and getppid(2)
            // run, both async-signal-safe system calls.
            unsafe {
                command.pre_exec(move || {
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::KILL,
                    ))?;
                    // The service may have died before the line above.
                    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get() as u32)
                        != Some(parent)
                    {
                        return Err(io::Error::other(
                            "the service died while this child started",
                        ));
                    }
                    Ok(())
                });
            }
        }
        let handle = tokio::runtime::Handle::current();
        let (reply, replied) = oneshot::channel();
        spawner()?
            .send(Box::new(move || {
                let _runtime = handle.enter();
                // Whether the caller stopped waiting before or after this
                // send, a child nobody takes is killed when it drops.
                let _ = reply.send(command.spawn().map(Unclaimed::new));
            }))
            .map_err(|_| io::Error::other("the lichtara spawner thread is gone"))?;
        let child = replied
            .await
            .map_err(|_| io::Error::other("the lichtara spawner thread is gone"))??
            .claim();
        Ok(track(child, program, self))
    }
}

/// A child on its way from the spawner thread to its `spawn` future: if
/// the future was dropped, nobody claims it, and dropping it kills the
/// child with its group (the group is the child's own:
/// `process_group(0)`) and reaps it.
struct Unclaimed(Option<tokio::process::Child>);

impl Unclaimed {
    fn new(child: tokio::process::Child) -> Self {
        Self(Some(child))
    }

    fn claim(mut self) -> tokio::process::Child {
        self.0.take().expect("claimed once")
    }
}

impl Drop for Unclaimed {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if let Some(pid) = child.id().filter(|pid| *pid > 1) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.start_kill();
        // Without a runtime here, tokio reaps it with its orphans.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = child.wait().await;
            });
        }
        tracing::debug!("a child spawned for a dropped spawn() was killed");
    }
}

/// Spawns `command` tied to the service, stopped in phase 0 within 5 s.
/// See [`Spawner`] to choose.
///
/// # Errors
///
/// As `tokio::process::Command::spawn`.
///
/// # Cancel safety
///
/// Cancel safe, as [`Spawner::spawn`].
pub async fn spawn(command: tokio::process::Command) -> io::Result<Child> {
    Spawner::new().spawn(command).await
}

/// Process groups of the children spawned here: re-parented descendants
/// in them are ours to reap (see [`become_subreaper`]).
static GROUPS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Makes this process a child subreaper (Linux): descendants of its
/// children that lose their parent are re-parented here instead of to
/// PID 1. A task of the current runtime then reaps those of them that
/// belong to the process group of a child spawned through this module (the
/// children themselves are reaped by their own waiters), and the children's
/// stop hooks end them with their group at shutdown.
///
/// Processes the application spawns some other way are never reaped here:
/// their statuses stay theirs. A descendant that left its group (`setsid`)
/// is not reaped either; run such trees under `lichtara run`.
///
/// # Errors
///
/// When `prctl(PR_SET_CHILD_SUBREAPER)` fails or SIGCHLD cannot be
/// watched; elsewhere than Linux, always (unsupported).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// lichtara::process::become_subreaper()?;
/// # Ok(())
/// # }
/// ```
pub fn become_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        let mut children = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        tokio::spawn(async move {
            loop {
                reap_adopted();
                if children.recv().await.is_none() {
                    break;
                }
            }
        });
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "child subreapers are a Linux feature",
        ))
    }
}

/// Reaps exited, re-parented descendants in our children's groups.
#[cfg(target_os = "linux")]
fn reap_adopted() {
    let me = std::process::id() as i32;
    let groups = GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let Ok(all) = crate::proc_stat::all_stats() else {
        return;
    };
    for stat in all {
        // A child's own PID is its group id: those are left to their waiter.
        let in_our_groups = u32::try_from(stat.pgrp).is_ok_and(|group| groups.contains(&group));
        if stat.ppid == me && stat.is_zombie() && in_our_groups && stat.pgrp != stat.pid {
            if let Some(pid) = rustix::process::Pid::from_raw(stat.pid) {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
                tracing::debug!(
                    pid = pid.as_raw_nonzero().get(),
                    "reaped a re-parented descendant"
                );
            }
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The thread every child is forked from: it lives as long as the process,
/// so PDEATHSIG fires when the process dies and not before. Started by the
/// first spawn; if the system cannot start a thread, that spawn fails with
/// the error and the next one tries again.
fn spawner() -> io::Result<mpsc::Sender<Job>> {
    static SPAWNER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);
    let mut spawner = SPAWNER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(jobs) = &*spawner {
        return Ok(jobs.clone());
    }
    let (jobs, queue) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("lichtara-spawner".into())
        .spawn(move || {
            for job in queue {
                job();
            }
        })?;
    *spawner = Some(jobs.clone());
    Ok(jobs)
}

/// A child process tied to the service.
#[derive(Debug)]
pub struct Child {
    pid: u32,
    status: watch::Receiver<Option<ExitStatus>>,
    io: Mutex<ChildIo>,
}

#[derive(Debug, Default)]
struct ChildIo {
    stdin: Option<tokio::process::ChildStdin>,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
}

impl Child {
    /// The child's PID (its process group id too).
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for the child to exit.
    pub async fn wait(&self) -> ExitStatus {
        let mut status = self.status.clone();
        match status.wait_for(Option::is_some).await {
            Ok(status) => status.expect("waited for Some"),
            // The reaper task is gone only with the runtime.
            Err(_) => std::process::ExitStatus::default(),
        }
    }

    /// The exit status, if it exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        *self.status.borrow()
    }

    fn io(&self) -> std::sync::MutexGuard<'_, ChildIo> {
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the child's stdin, if it was piped.
    pub fn take_stdin(&self) -> Option<tokio::process::ChildStdin> {
        self.io().stdin.take()
    }

    /// Takes the child's stdout, if it was piped.
    pub fn take_stdout(&self) -> Option<tokio::process::ChildStdout> {
        self.io().stdout.take()
    }

    /// Takes the child's stderr, if it was piped.
    pub fn take_stderr(&self) -> Option<tokio::process::ChildStderr> {
        self.io().stderr.take()
    }
}

/// The parts of a child the shutdown hook needs.
struct Tracked {
    pid: u32,
    program: String,
    status: watch::Receiver<Option<ExitStatus>>,
    #[cfg(target_os = "linux")]
    pidfd: Option<std::os::fd::OwnedFd>,
}

impl Tracked {
    fn exited(&self) -> bool {
        self.status.borrow().is_some()
    }

    fn signal_group(&self, signal: i32) {
        // The group id is the child's PID; it cannot name another group
        // while any member of this one lives. Never 0, 1 or negative.
        if self.pid > 1 {
            if let Ok(signal) = nix::sys::signal::Signal::try_from(signal) {
                let _ =
                    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(self.pid as i32), signal);
            }
        }
        // The leader through its pidfd, race-free even if it was reaped.
        #[cfg(target_os = "linux")]
        if let (Some(pidfd), Some(signal)) =
            (&self.pidfd, rustix::process::Signal::from_named_raw(signal))
        {
            let _ = rustix::process::pidfd_send_signal(pidfd, signal);
        }
    }
}

fn track(mut child: tokio::process::Child, program: String, spawner: Spawner) -> Child {
    let pid = child.id().unwrap_or(0);
    #[cfg(target_os = "linux")]
    let pidfd = rustix::process::Pid::from_raw(pid as i32)
        .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
    let io = ChildIo {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    };
    GROUPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(pid);
    let (report, status) = watch::channel(None);
    // The only waiter: it reaps the child and publishes the status.
    tokio::spawn(async move {
        if let Ok(exit) = child.wait().await {
            let _ = report.send(Some(exit));
        }
    });
    let tracked = Arc::new(Tracked {
        pid,
        program,
        status: status.clone(),
        #[cfg(target_os = "linux")]
        pidfd,
    });
    register_stop(tracked, spawner);
    Child {
        pid,
        status,
        io: Mutex::new(io),
    }
}

fn register_stop(tracked: Arc<Tracked>, spawner: Spawner) {
    let timeout = spawner.timeout;
    let name = format!(
        "lichtara::process::child {} ({})",
        tracked.pid, tracked.program
    );
    let detail = crate::hook::DetailSlot::default();
    let slot = Arc::clone(&detail);
    let run = move || -> crate::hook::HookFuture {
        crate::hook::HookFuture::new(async move {
            let mut status = tracked.status.clone();
            if !tracked.exited() {
                tracked.signal_group(libc_signal::TERM);
            }
            let stopped = tokio::time::timeout(timeout, status.wait_for(Option::is_some))
                .await
                .is_ok();
            // Descendants in the group go too, even if the leader is gone.
            tracked.signal_group(libc_signal::KILL);
            if stopped {
                let exit = *tracked.status.borrow();
                tracing::info!(pid = tracked.pid, status = %describe(exit), "child stopped");
                if let Some(exit) = exit {
                    let _ = slot.set(format!("exited: {exit}"));
                }
                return Ok(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), status.wait_for(Option::is_some))
                .await;
            let exit = *tracked.status.borrow();
            tracing::warn!(pid = tracked.pid, status = %describe(exit), "child needed SIGKILL");
            Err(format!(
                "child {} did not stop within {} of SIGTERM; killed ({})",
                tracked.pid,
                humantime::format_duration(timeout),
                describe(exit)
            )
            .into())
        })
    };
    crate::registry::add(Hook {
        meta: HookMeta {
            name: Cow::Owned(name),
            order: spawner.order,
            // The hook bounds itself: SIGTERM, `timeout`, SIGKILL, 5 s.
            timeout: Some(timeout + Duration::from_secs(6)),
            kind: HookKind::Builder,
            source: None,
            detail: Some(detail),
        },
        runner: HookRunner::Boxed(Box::new(run)),
    });
}

/// How a child ended, as a log line says it: `exit status: 0`, `signal: 9
/// (SIGKILL)`, or `still running`.
fn describe(exit: Option<ExitStatus>) -> String {
    exit.map_or_else(|| "still running".to_owned(), |exit| exit.to_string())
}

mod libc_signal {
    pub(super) const TERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
    pub(super) const KILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;
}
