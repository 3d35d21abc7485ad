//! Signalling processes that are provably ours, and waiting for them to
//! end without polling sleeps.
//!
//! A process is signalled only through a pidfd opened *before* its identity
//! (start time) was checked again: once the pidfd is open the PID cannot be
//! recycled under us, so the check and the signal are about one process.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

use crate::procfs;

/// How long SIGKILLed processes get to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// A process pinned by a pidfd and verified to be the one we mean.
pub(crate) struct Pinned {
    pub(crate) pid: i32,
    fd: OwnedFd,
}

/// Pins `pid` if it is still the process that started at `start_time` and
/// is neither PID 1 nor this process.
pub(crate) fn pin(pid: i32, start_time: u64) -> Option<Pinned> {
    if pid <= 1 || pid == std::process::id() as i32 {
        return None;
    }
    let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
    // Checked after the pidfd exists: a recycled PID would show another
    // start time, and from here on the PID stays this process's.
    let stat = procfs::stat(pid).ok()?;
    (stat.start_time == start_time && !stat.is_zombie()).then_some(Pinned { pid, fd })
}

impl Pinned {
    pub(crate) fn signal(&self, signal: Signal) {
        // ESRCH: it ended meanwhile, which is what we want.
        let _ = pidfd_send_signal(&self.fd, signal);
    }
}

/// Waits until every pinned process has exited or `timeout` passes; returns
/// the ones still alive.
pub(crate) fn wait_exit(pinned: Vec<Pinned>, timeout: Duration) -> Vec<Pinned> {
    let until = Instant::now() + timeout;
    let mut alive = pinned;
    while !alive.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        let timespec = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds: Vec<PollFd<'_>> = alive
            .iter()
            .map(|p| PollFd::new(&p.fd, PollFlags::IN))
            .collect();
        let ready = match poll(&mut fds, Some(&timespec)) {
            Ok(ready) => ready,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => 0,
        };
        let exited: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        drop(fds);
        let mut index = 0;
        alive.retain(|_| {
            let keep = !exited[index];
            index += 1;
            keep
        });
        if ready == 0 && Instant::now() >= until {
            break;
        }
    }
    alive
}

/// What a termination did.
#[derive(Debug, Default)]
pub(crate) struct Terminated {
    /// Ended after SIGTERM.
    pub(crate) by_term: usize,
    /// Needed SIGKILL.
    pub(crate) by_kill: Vec<i32>,
    /// Still alive after SIGKILL (stuck in the kernel).
    pub(crate) survivors: Vec<i32>,
}

/// SIGTERM to every pinned process (and to `group`, if given: a group we
/// verified is ours), up to `timeout` for them to end, then SIGKILL.
pub(crate) fn terminate(pinned: Vec<Pinned>, group: Option<i32>, timeout: Duration) -> Terminated {
    let total = pinned.len();
    signal_group(group, Signal::TERM);
    for process in &pinned {
        process.signal(Signal::TERM);
    }
    let stubborn = wait_exit(pinned, timeout);
    let by_kill: Vec<i32> = stubborn.iter().map(|p| p.pid).collect();
    if !stubborn.is_empty() {
        signal_group(group, Signal::KILL);
        for process in &stubborn {
            process.signal(Signal::KILL);
        }
    }
    let survivors = wait_exit(stubborn, KILL_WAIT)
        .iter()
        .map(|p| p.pid)
        .collect();
    Terminated {
        by_term: total - by_kill.len(),
        by_kill,
        survivors,
    }
}

fn signal_group(group: Option<i32>, signal: Signal) {
    // Never PID 0/1 or a negative: only a real group id we verified.
    if let Some(pgid) = group.filter(|pgid| *pgid > 1) {
        if let Some(pgid) = Pid::from_raw(pgid) {
            let _ = rustix::process::kill_process_group(pgid, signal);
        }
    }
}
