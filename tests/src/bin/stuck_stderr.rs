//! Stderr is a pipe nobody reads, and a thread of the process blocks
//! writing to it while it holds the standard stream's lock (or the pipe is
//! just full). The process must still end, by the watchdog past the
//! deadline (1 s here), with the right code.
//!
//! `STUCK`:
//! - `hook`: the hook `chatty` (timeout 200 ms) prints `filling` on stdout
//!   and is that thread, so the sequencer blocks on the line that reports
//!   it timed out.
//! - `exit`: a thread `main` starts; `main` returns.
//! - `signal`: as `exit`, but `main` prints `READY` and waits for the
//!   signal, whose "shutdown begun" line then blocks the supervisor.
//! - `full`: the hook fills the pipe without blocking (and holds nothing):
//!   the next line written blocks, whichever it is.

use std::io::Write;
use std::os::fd::AsFd;

use lichtara_tests::event;

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

/// Fills the pipe that is stderr to the brim, without blocking, and
/// leaves it blocking again.
fn fill_pipe() {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let stderr = std::io::stderr();
    let fd = stderr.as_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL).expect("F_GETFL"));
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).expect("O_NONBLOCK");
    let chunk = [b'x'; 4096];
    while nix::unistd::write(fd, &chunk).is_ok() {}
    while nix::unistd::write(fd, b"x").is_ok() {}
    fcntl(fd, FcntlArg::F_SETFL(flags)).expect("blocking again");
}

#[lichtara::cleanup(timeout = "200ms")]
async fn chatty() {
    match stuck().as_str() {
        "hook" => {
            event("filling");
            fill_stderr(|| ());
        }
        "full" => fill_pipe(),
        _ => {}
    }
}

#[lichtara::main(timeout = "1s")]
async fn main() {
    let mode = stuck();
    if mode == "exit" || mode == "signal" {
        let (locked, is_locked) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            fill_stderr(move || {
                let _ = locked.send(());
            })
        });
        let _ = is_locked.recv();
    }
    if mode == "signal" {
        event("READY");
        lichtara::signalled().await;
    }
}
