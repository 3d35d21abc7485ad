//! Ending the process: once, from whichever thread gets there first, and
//! never held up by a log nobody reads.

use std::io::Write;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// No code: the exit is not claimed, or no code is intended.
const NONE: i32 = i32::MIN;

/// The code of the claimed exit: claiming is setting it, once.
static CLAIMED: AtomicI32 = AtomicI32::new(NONE);

/// The exit code of a sequence that has ended (its report written), for a
/// watchdog that finds its exit stuck on the last lines.
static INTENDED: AtomicI32 = AtomicI32::new(NONE);

/// How long the watchdog lets the last lines (its own, or those of an exit
/// already under way) be written before it ends the process without them:
/// stderr may be a pipe nobody reads, and a write to it blocks forever.
/// Inside the second systemd is told to allow past the deadline, with the
/// watchdog's grace (`supervisor::WATCHDOG_GRACE`).
const LAST_WORDS: Duration = Duration::from_millis(300);

/// Claims the exit, to end with `code`; `false` if another thread claimed
/// it first.
fn try_claim(code: i32) -> bool {
    CLAIMED
        .compare_exchange(NONE, code, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Says that the sequence has ended and the process will exit with
/// `code`: from now on the watchdog, should the exit be stuck, ends it
/// with that code rather than 124.
pub(crate) fn intend(code: i32) {
    INTENDED.store(code, Ordering::Release);
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
    /// The global deadline passed: 124, or the ended sequence's code.
    Deadline,
    /// By this signal, as if it had not been handled.
    Signal(i32),
}

/// How the process ends at once.
#[derive(Clone, Copy)]
enum Now {
    Code(i32),
    Signal(i32),
}

/// Ends the process from a thread that must not block (the watchdog's,
/// the supervisor's): `last_words` (the report, the log line) run on a
/// thread of their own for at most [`LAST_WORDS`], and the process ends
/// without them if they block. When the sequence has ended (its report
/// written) or another thread has claimed the exit, that exit is given as
/// long, then the process ends with its code: it is stuck writing.
pub(crate) fn abandon(ending: Ending, last_words: impl FnOnce() + Send + 'static) -> ! {
    let intended = INTENDED.load(Ordering::Acquire);
    let (code, now) = match ending {
        Ending::Deadline if intended != NONE => {
            std::thread::sleep(LAST_WORDS);
            end_now(Now::Code(intended))
        }
        Ending::Deadline => (124, Now::Code(124)),
        Ending::Signal(signal) => (128 + signal, Now::Signal(signal)),
    };
    if !try_claim(code) {
        std::thread::sleep(LAST_WORDS);
        end_now(Now::Code(CLAIMED.load(Ordering::Acquire)))
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
    end_now(now)
}

/// Ends the process at once: no exit handlers, no flush of the standard
/// streams (either may block on a full pipe).
fn end_now(now: Now) -> ! {
    let code = match now {
        Now::Code(code) => code,
        Now::Signal(signal) => {
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
