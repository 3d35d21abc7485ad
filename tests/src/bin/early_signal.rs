//! A service whose SIGTERM comes before its `main` runs: it says `loaded`
//! from a constructor (before `main`, the runtime and lichtara's
//! supervisor) and, with `HOLD=1`, waits there for a line on stdin, so that
//! a signal sent meanwhile surely arrives before lichtara listens. The
//! signal must still begin the shutdown and the hook must run (the early
//! handler of `#[lichtara::main]`).
//!
//! `FORK=1`: `main` forks a child that does not exec and prints `forked
//! PID`; when the child ends, a thread reaps it and prints `reaped STATUS`
//! (`reaped SIGTERM` when it died of that signal).

use lichtara_tests::event;

/// Runs with the other constructors, after the early handler is in place
/// (`.preinit_array` comes first) and long before lichtara listens.
#[ctor::ctor(unsafe)]
fn loaded() {
    // Plain write(2) and read(2): `std`'s streams are not to be relied on
    // yet.
    let _ = nix::unistd::write(std::io::stdout(), b"loaded\n");
    if std::env::var_os("HOLD").is_some() {
        let mut line = [0; 1];
        let _ = nix::unistd::read(std::io::stdin(), &mut line);
    }
}

#[lichtara::cleanup]
async fn flush() {
    event("flushed");
}

#[lichtara::main(timeout = "10s")]
async fn main() {
    if std::env::var_os("FORK").is_some() {
        // SAFETY: the child only sleeps (async-signal-safe) until signalled.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => loop {
                nix::unistd::pause();
            },
            Ok(nix::unistd::ForkResult::Parent { child }) => {
                event(&format!("forked {child}"));
                std::thread::spawn(move || {
                    use nix::sys::wait::{WaitStatus, waitpid};
                    match waitpid(child, None) {
                        Ok(WaitStatus::Signaled(_, signal, _)) => {
                            event(&format!("reaped {}", signal.as_str()))
                        }
                        other => event(&format!("reaped {other:?}")),
                    }
                });
            }
            Err(err) => panic!("fork: {err}"),
        }
    }
    event("READY");
    lichtara::signalled().await;
    event("wound down");
}
