//! What the commands print. A closed stdout or stderr (`lichtara status |
//! head -1`) is not an error: the command still does all its work and ends
//! with the code it would have had, as `ls | head` does — never a panic.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line on stdout, unless stdout has been closed.
pub(crate) fn line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Writes `bytes` on stdout as they are; `false` once stdout is closed.
pub(crate) fn bytes(bytes: &[u8]) -> bool {
    let mut out = std::io::stdout().lock();
    if out.write_all(bytes).and_then(|()| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
    !stdout_closed()
}

/// Writes text on stdout with no newline (a prompt).
pub(crate) fn prompt(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if write!(out, "{text}").and_then(|()| out.flush()).is_err() {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
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
