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

/// The shutdown signals before the supervisor listens: from the first
/// instructions of a `#[lichtara::main]` program (its `.preinit_array`,
/// before any constructor) until the supervisor's handlers are in place, a
/// signal is recorded here, not left to its default action (which ends the
/// process with no hook run), and the supervisor begins the shutdown for
/// it once it listens.
#[cfg(unix)]
pub(crate) mod early {
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

    use crate::report::Trigger;

    /// The first SIGTERM or SIGINT that arrived early; 0 for none.
    static ARRIVED: AtomicI32 = AtomicI32::new(0);
    /// Whether a SIGHUP arrived early.
    static HUP_ARRIVED: AtomicBool = AtomicBool::new(false);
    /// Set once the supervisor listens: the early handler stays chained
    /// behind tokio's, and must record nothing more.
    static LISTENING: AtomicBool = AtomicBool::new(false);
    /// The process that installed the handler: a child forked without exec
    /// inherits it, and must not be left unable to die of the signal.
    static OWNER: AtomicI32 = AtomicI32::new(0);
    /// Set when lichtara's entry point runs (`run_main`, `lichtara::run`):
    /// its supervisor will take the signal.
    static MAIN_BEGAN: AtomicBool = AtomicBool::new(false);
    /// When the handler was installed (`CLOCK_MONOTONIC`, nanoseconds).
    static INSTALLED_AT: AtomicU64 = AtomicU64::new(0);

    /// How long after the handler's installation a signal is held for an
    /// entry point that has not run yet. The generated `main` runs it at
    /// once; a program whose real `main` never calls the attributed one (a
    /// `#[lichtara::main] fn main` in a module, called on one path only) must
    /// not ignore its signals for good: past this, one arriving before the
    /// entry point takes its default action.
    const HOLD_FOR_ENTRY: std::time::Duration = std::time::Duration::from_secs(1);

    /// Now on the monotonic clock, in nanoseconds (async-signal-safe).
    fn monotonic_nanos() -> u64 {
        nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
            (now.tv_sec() as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(now.tv_nsec() as u64)
        })
    }

    /// The signal's default action, as if lichtara had never handled it (it
    /// is blocked while the handler runs, and delivered as soon as the
    /// handler returns).
    fn default_action(signal: nix::libc::c_int) {
        if let Ok(signal) = Signal::try_from(signal) {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            // SAFETY: installs the default disposition, no handler code.
            let _ = unsafe { sigaction(signal, &default) };
            let _ = nix::sys::signal::raise(signal);
        }
    }

    /// Called by lichtara's entry point: its supervisor takes the early
    /// signal, however late that is.
    pub(crate) fn main_began() {
        MAIN_BEGAN.store(true, Ordering::Release);
    }

    const SIGNALS: [Signal; 3] = [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP];

    /// Async-signal-safe: atomics, `getpid`, `clock_gettime`, `sigaction`
    /// and `raise`.
    extern "C" fn record(signal: nix::libc::c_int) {
        if nix::unistd::getpid().as_raw() != OWNER.load(Ordering::Relaxed) {
            // A forked child: no supervisor of its own will come.
            default_action(signal);
            return;
        }
        if LISTENING.load(Ordering::Acquire) {
            return;
        }
        let held = MAIN_BEGAN.load(Ordering::Acquire)
            || monotonic_nanos().saturating_sub(INSTALLED_AT.load(Ordering::Relaxed))
                < HOLD_FOR_ENTRY.as_nanos() as u64;
        if held && signal == Signal::SIGHUP as nix::libc::c_int {
            // Kept apart: with reload hooks it asks for a reload, and a
            // SIGTERM after it must still begin the shutdown.
            HUP_ARRIVED.store(true, Ordering::Release);
        } else if held {
            let _ = ARRIVED.compare_exchange(0, signal, Ordering::AcqRel, Ordering::Relaxed);
        } else {
            default_action(signal);
        }
    }

    /// Installs the early handler for SIGTERM, SIGINT and SIGHUP. Called
    /// once, before any constructor.
    pub(crate) fn install() {
        OWNER.store(nix::unistd::getpid().as_raw(), Ordering::Relaxed);
        INSTALLED_AT.store(monotonic_nanos(), Ordering::Relaxed);
        let action = SigAction::new(
            SigHandler::Handler(record),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for signal in SIGNALS {
            // SAFETY: `record` is async-signal-safe (see there); nothing
            // else is installed yet to be replaced.
            let _ = unsafe { sigaction(signal, &action) };
        }
    }

    /// Called once the supervisor's handlers are in place: the signals that
    /// arrived before them (a SIGHUP first, then a SIGTERM or SIGINT). One that arrives while this runs is
    /// seen by both (a repeat, which the supervisor counts once).
    pub(crate) fn take() -> Vec<Trigger> {
        LISTENING.store(true, Ordering::Release);
        let mut arrived = Vec::new();
        if HUP_ARRIVED.swap(false, Ordering::AcqRel) {
            arrived.push(Trigger::Signal {
                name: "SIGHUP",
                number: Signal::SIGHUP as i32,
            });
        }
        let number = ARRIVED.swap(0, Ordering::AcqRel);
        let name = match Signal::try_from(number) {
            Ok(Signal::SIGTERM) => Some("SIGTERM"),
            Ok(Signal::SIGINT) => Some("SIGINT"),
            _ => None,
        };
        if let Some(name) = name {
            arrived.push(Trigger::Signal { name, number });
        }
        arrived
    }
}
