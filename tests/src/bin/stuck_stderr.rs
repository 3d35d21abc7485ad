//! Stderr is a pipe nobody reads, and a thread of the process blocks
//! writing to it while it holds the standard stream's lock. The process
//! must still end, by the watchdog past the deadline (1 s here).
//!
//! `STUCK=hook`: that thread is the hook `chatty`'s (timeout 200 ms), so
//! the sequencer blocks on the line that reports it timed out. `STUCK=exit`:
//! it is a thread `main` starts; with `RUST_LOG=off` the sequence ends, and
//! the exit's flush of stderr is what waits.

use std::io::Write;

fn stuck() -> String {
    std::env::var("STUCK").unwrap_or_default()
}

/// Writes to stderr until the pipe is full, and blocks there for good,
/// holding the lock; `locked` runs once the lock is held.
fn fill_stderr(locked: impl FnOnce()) {
    let mut stderr = std::io::stderr().lock();
    locked();
    let chunk = [b'x'; 4096];
    while stderr.write_all(&chunk).is_ok() {}
    // Read after all (or closed): hold the lock anyway.
    loop {
        std::thread::park();
    }
}

#[lichtara::cleanup(timeout = "200ms")]
async fn chatty() {
    if stuck() == "hook" {
        fill_stderr(|| ());
    }
}

#[lichtara::main(timeout = "1s")]
async fn main() {
    if stuck() == "exit" {
        let (locked, is_locked) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            fill_stderr(move || {
                let _ = locked.send(());
            })
        });
        let _ = is_locked.recv();
    }
}
