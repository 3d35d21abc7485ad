//! The signals that begin a shutdown, registered eagerly so that a failure
//! shows at startup, not when the first signal arrives.

use std::io;

use crate::report::Trigger;

/// Listens for SIGTERM, SIGINT and SIGHUP.
#[cfg(unix)]
pub(crate) struct Listener {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Listener {
    /// Registers the handlers. Must run inside a runtime with the I/O
    /// driver enabled.
    pub(crate) fn new() -> io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal.
    pub(crate) async fn recv(&mut self) -> Trigger {
        let (name, number) = tokio::select! {
            Some(()) = self.term.recv() => ("SIGTERM", libc_number::SIGTERM),
            Some(()) = self.int.recv() => ("SIGINT", libc_number::SIGINT),
            Some(()) = self.hup.recv() => ("SIGHUP", libc_number::SIGHUP),
            // Every stream ended (the runtime is going away): no more signals.
            else => return std::future::pending().await,
        };
        Trigger::Signal { name, number }
    }
}

#[cfg(unix)]
mod libc_number {
    use nix::sys::signal::Signal;

    pub(super) const SIGTERM: i32 = Signal::SIGTERM as i32;
    pub(super) const SIGINT: i32 = Signal::SIGINT as i32;
    pub(super) const SIGHUP: i32 = Signal::SIGHUP as i32;
}

/// Listens for Ctrl-C, Ctrl-Break, console close and system shutdown.
#[cfg(windows)]
pub(crate) struct Listener {
    ctrl_c: tokio::signal::windows::CtrlC,
    ctrl_break: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

#[cfg(windows)]
impl Listener {
    /// Registers the handlers. Must run inside a runtime with the I/O
    /// driver enabled.
    pub(crate) fn new() -> io::Result<Self> {
        use tokio::signal::windows;
        Ok(Self {
            ctrl_c: windows::ctrl_c()?,
            ctrl_break: windows::ctrl_break()?,
            close: windows::ctrl_close()?,
            shutdown: windows::ctrl_shutdown()?,
        })
    }

    /// The next console event.
    pub(crate) async fn recv(&mut self) -> Trigger {
        let name = tokio::select! {
            Some(()) = self.ctrl_c.recv() => "ctrl-c",
            Some(()) = self.ctrl_break.recv() => "ctrl-break",
            Some(()) = self.close.recv() => "close",
            Some(()) = self.shutdown.recv() => "shutdown",
            else => return std::future::pending().await,
        };
        Trigger::Signal { name, number: 0 }
    }
}
