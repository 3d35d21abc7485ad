//! Ending the process: once, from whichever thread gets there first.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static EXITING: AtomicBool = AtomicBool::new(false);

/// Claims the exit. The loser of a race (the main thread finishing just as
/// the watchdog fires) waits for the winner to end the process.
fn claim() {
    if EXITING.swap(true, Ordering::AcqRel) {
        loop {
            std::thread::park();
        }
    }
}

fn flush() {
    crate::logging::flush();
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
}

/// Ends the process with `code`.
pub(crate) fn exit(code: i32) -> ! {
    claim();
    flush();
    std::process::exit(code)
}

/// Ends the process by `signal`, as if it had not been handled: the default
/// disposition is restored and the signal raised, so a shell shows 128+N and
/// systemd sees the signal.
#[cfg(unix)]
pub(crate) fn die_of_signal(signal: i32) -> ! {
    use nix::sys::signal::{SigHandler, Signal, raise, signal as set_handler};

    claim();
    flush();
    if let Ok(signal) = Signal::try_from(signal) {
        // SAFETY: restoring the default disposition installs no handler
        // code; nothing runs in signal context.
        let _ = unsafe { set_handler(signal, SigHandler::SigDfl) };
        let _ = raise(signal);
    }
    // The signal did not end the process (it was blocked): say it anyway.
    std::process::exit(128 + signal)
}

/// Ends the process for a console event; Windows has no signal to re-raise.
#[cfg(not(unix))]
pub(crate) fn die_of_signal(signal: i32) -> ! {
    exit(128 + signal)
}
