//! Signalling processes that are provably ours, and waiting for them to
//! end without polling sleeps.
//!
//! A process is signalled only through a pidfd opened *before* its identity
//! was proved (`ownership::prove`): once the pidfd is open the PID cannot
//! be recycled under us, so the proof and the signal are about one process.
//! No group signal: a group may hold members that fail the proof, so each
//! proved member is signalled on its own.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};

/// How long SIGKILLed processes get to disappear.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(5);

/// A process pinned by a pidfd and verified to be the one we mean.
pub(crate) struct Pinned {
    pub(crate) pid: i32,
    fd: OwnedFd,
}

impl Pinned {
    /// A pidfd for `pid`, never for PID 1 or below, nor this process.
    /// Only a pin: `ownership::prove` decides whether it may be signalled.
    pub(crate) fn open(pid: i32) -> Option<Self> {
        if pid <= 1 || pid == std::process::id() as i32 {
            return None;
        }
        let fd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
        Some(Self { pid, fd })
    }

    /// [`Pinned::open`], telling a process that is gone (`Ok(None)`) from
    /// one that could not be pinned (out of descriptors, say).
    pub(crate) fn try_open(pid: i32) -> rustix::io::Result<Option<Self>> {
        let Some(raw) = Pid::from_raw(pid).filter(|_| pid > 1 && pid != std::process::id() as i32)
        else {
            return Ok(None);
        };
        match pidfd_open(raw, PidfdFlags::empty()) {
            Ok(fd) => Ok(Some(Self { pid, fd })),
            Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(err) => Err(err),
        }
    }

    pub(crate) fn signal(&self, signal: Signal) {
        // ESRCH: it ended meanwhile, which is what we want.
        let _ = pidfd_send_signal(&self.fd, signal);
    }
}

/// Waits until every pinned process has exited or `timeout` passes; returns
/// the ones still alive.
pub(crate) fn wait_exit(pinned: Vec<Pinned>, timeout: Duration) -> Vec<Pinned> {
    // Durations are bounded where they are parsed; a far-off one waits
    // (as good as) forever rather than overflow.
    let now = Instant::now();
    let until = now
        .checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)));
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

/// `stop_signal` to every pinned process, up to `timeout` for them to end,
/// then SIGKILL for the rest.
pub(crate) fn terminate(pinned: Vec<Pinned>, stop_signal: Signal, timeout: Duration) -> Terminated {
    let total = pinned.len();
    for process in &pinned {
        process.signal(stop_signal);
    }
    let stubborn = wait_exit(pinned, timeout);
    let by_kill: Vec<i32> = stubborn.iter().map(|p| p.pid).collect();
    for process in &stubborn {
        process.signal(Signal::KILL);
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
