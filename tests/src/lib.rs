//! Shared pieces of the process-level tests: the event lines the test
//! binaries print, and a harness that runs one of them as a child process,
//! signals it and always reaps it.

use std::io::Write;

pub mod harness;
pub mod load;
#[cfg(target_os = "linux")]
pub mod managed;

/// Prints one event line on stdout, where the test reads it.
pub fn event(what: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{what}");
    let _ = out.flush();
}
