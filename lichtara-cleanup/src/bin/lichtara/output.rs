//! What the commands print. A closed stdout or stderr (`lichtara status |
//! head -1`) is not an error: the command still does all its work and ends
//! with the code it would have had, as `ls | head` does — never a panic.
//! Output lost to anything else (a full disk, `/dev/full`) ends a command
//! that would have succeeded with exit 1.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// A write to stdout failed for another reason than a closed pipe (a full
/// disk, /dev/full): the command's output is lost, which is an error.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

fn failed(err: &std::io::Error) {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    } else {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
        // Nothing more is written to it.
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Whether some output was lost to an error other than a closed pipe.
pub(crate) fn stdout_failed() -> bool {
    STDOUT_FAILED.load(Ordering::Relaxed)
}

/// Writes one line on stdout, unless stdout has been closed.
pub(crate) fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if stdout_closed() {
        return;
    }
    if let Err(err) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        failed(&err);
    }
}

/// Writes `bytes` on stdout as they are; `false` once stdout is closed.
pub(crate) fn bytes(bytes: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    if stdout_closed() {
        return false;
    }
    if let Err(err) = out.write_all(bytes).and_then(|()| out.flush()) {
        failed(&err);
    }
    !stdout_closed()
}

/// Writes text on stdout with no newline (a prompt).
pub(crate) fn prompt(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if stdout_closed() {
        return;
    }
    if let Err(err) = write!(out, "{text}").and_then(|()| out.flush()) {
        failed(&err);
    }
}

/// Whether a write found stdout closed.
pub(crate) fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(Ordering::Relaxed)
}

/// Writes one `lichtara: …` line on stderr; a closed stderr is ignored.
pub(crate) fn note(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr().lock(), "lichtara: {text}");
}

/// `println!` that cannot panic on a closed stdout.
macro_rules! say {
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}

/// `eprintln!("lichtara: …")` that cannot panic on a closed stderr.
macro_rules! note {
    ($($arg:tt)*) => { $crate::output::note(format_args!($($arg)*)) };
}
