//! Ending the process: once, from whichever thread gets there first, and
//! never held up by a log nobody reads.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

static EXITING: AtomicBool = AtomicBool::new(false);

/// The code the claimed exit ends with, for a watchdog that finds it stuck.
static CODE: AtomicI32 = AtomicI32::new(0);

/// How long the watchdog lets the last lines (its own, or those of an exit
/// already under way) be written before it ends the process without them:
/// stderr may be a pipe nobody reads, and a write to it blocks forever.
/// Inside the second systemd is told to allow past the deadline, with the
/// watchdog's grace (`supervisor::WATCHDOG_GRACE`).
const LAST_WORDS: Duration = Duration::from_millis(300);

/// Claims the exit, to end with `code`; `false` if another thread claimed
/// it first.
fn try_claim(code: i32) -> bool {
    if EXITING.swap(true, Ordering::AcqRel) {
        return false;
    }
    CODE.store(code, Ordering::Release);
    true
}

/// Claims the exit. The loser of a race (the main thread finishing just as
/// the watchdog fires) waits for the winner to end the process.
fn claim(code: i32) {
    if !try_claim(code) {
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
    exit_after(code, || ())
}

/// Ends the process with `code` once `last` (the last lines, the report)
/// has run. The exit is claimed first: should `last` or the flush after it
/// block on a full stderr, the watchdog ends the process with `code`.
pub(crate) fn exit_after(code: i32, last: impl FnOnce()) -> ! {
    claim(code);
    last();
    flush();
    std::process::exit(code)
}

/// How the watchdog ends the process.
#[derive(Clone, Copy)]
pub(crate) enum Ending {
    /// With this exit code.
    Code(i32),
    /// By this signal, as if it had not been handled.
    Signal(i32),
}

/// Ends the process from the watchdog's thread, which must not block:
/// `last_words` (the report, the log line) run on a thread of their own
/// for at most [`LAST_WORDS`], and the process ends without them if they
/// block. When another thread has claimed the exit, it is given as long,
/// then the process ends with that thread's code: it is stuck writing.
pub(crate) fn abandon(ending: Ending, last_words: impl FnOnce() + Send + 'static) -> ! {
    let code = match ending {
        Ending::Code(code) => code,
        Ending::Signal(signal) => 128 + signal,
    };
    if !try_claim(code) {
        std::thread::sleep(LAST_WORDS);
        end_now(Ending::Code(CODE.load(Ordering::Acquire)))
    }
    let (said, done) = mpsc::channel();
    let spoken = std::thread::Builder::new()
        .name("lichtara-last-words".into())
        .spawn(move || {
            last_words();
            flush();
            let _ = said.send(());
        });
    if spoken.is_ok() {
        let _ = done.recv_timeout(LAST_WORDS);
    }
    end_now(ending)
}

/// Ends the process at once: no exit handlers, no flush of the standard
/// streams (either may block on a full pipe).
fn end_now(ending: Ending) -> ! {
    let code = match ending {
        Ending::Code(code) => code,
        Ending::Signal(signal) => {
            raise_default(signal);
            128 + signal
        }
    };
    #[cfg(unix)]
    // SAFETY: `_exit` ends the process at once, running no code of this
    // process after it; nothing is left half-done that a handler would
    // need to see.
    unsafe {
        libc::_exit(code)
    }
    #[cfg(not(unix))]
    std::process::exit(code)
}

/// Raises `signal` with its default disposition restored, which ends the
/// process for the signals lichtara handles.
#[cfg(unix)]
fn raise_default(signal: i32) {
    use nix::sys::signal::{SigHandler, Signal, raise, signal as set_handler};
    if let Ok(signal) = Signal::try_from(signal) {
        // SAFETY: restoring the default disposition installs no handler
        // code; nothing runs in signal context.
        let _ = unsafe { set_handler(signal, SigHandler::SigDfl) };
        let _ = raise(signal);
    }
}

#[cfg(not(unix))]
fn raise_default(_signal: i32) {}
