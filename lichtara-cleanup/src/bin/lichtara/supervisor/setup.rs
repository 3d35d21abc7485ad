//! The supervisor's own process: the lock and report pipe `start` handed
//! down, nothing else it inherited, and the signals that ask it to stop
//! (SIGTERM, SIGINT) or to reload (SIGHUP).

use std::fs::File;
use std::os::fd::FromRawFd;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::record::Lock;

/// A descriptor `start` handed down (`--report-fd`, `--lock-fd`), owned
/// here from now on and close-on-exec: the service inherits none of them
/// by accident (the lock only on purpose, between fork and exec).
pub(super) fn adopt(fd: i32) -> Option<File> {
    if fd < 3 {
        return None;
    }
    // SAFETY: `start` passed this descriptor open, for this process alone;
    // nothing else in this process owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    let _ = rustix::io::fcntl_setfd(&file, rustix::io::FdFlags::CLOEXEC);
    Some(file)
}

/// The lock `start` took and passed down (an open file description that
/// holds the flock).
pub(super) fn adopt_lock(fd: i32) -> Option<Lock> {
    adopt(fd).map(|file| Lock { file })
}

/// Closes every descriptor this process inherited but stdin, stdout,
/// stderr and `keep` (it runs before this process opens any of its own).
pub(super) fn close_inherited(keep: &[i32]) {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2 && !keep.contains(fd))
        .collect();
    for fd in fds {
        // SAFETY: nothing in this process owns these descriptors: they
        // were inherited, and this runs before anything here opens its
        // own. The one that listed them is among them, closed by now:
        // closing it again fails (EBADF), and nothing reused its number.
        let _ = unsafe { rustix::io::try_close(fd) };
    }
}

/// Blocks the signals that ask for a stop or a reload and returns a
/// signalfd for them.
pub(super) fn stop_signals() -> nix::Result<SignalFd> {
    let mut mask = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(signal);
    }
    mask.thread_block()?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
}
