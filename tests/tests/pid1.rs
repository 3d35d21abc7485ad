//! A `#[lichtara::main]` program running as PID 1 of a new PID namespace,
//! as in a container: the kernel ignores signals PID 1 has no handler for,
//! so this proves lichtara's handlers are in place.

#![cfg(target_os = "linux")]

use lichtara_tests::harness::Proc;
use nix::sys::signal::Signal;

fn unshare_permitted() -> bool {
    std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|status| status.success())
}

/// The PID, in our namespace, of the only child of `parent`.
fn only_child(parent: u32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[test]
fn as_pid_1_sigterm_runs_the_whole_sequence() {
    if !unshare_permitted() {
        eprintln!("SKIPPED: this machine does not permit `unshare --pid --fork --mount-proc`");
        return;
    }
    let mut namespace = Proc::start_with_args(
        "unshare",
        &[
            "--pid",
            "--fork",
            "--mount-proc",
            env!("CARGO_BIN_EXE_service"),
        ],
        &[("MODE", "serve")],
    );
    namespace.wait_for_line("READY");
    let inner = only_child(namespace.pid()).expect("the service inside the namespace");
    let status = std::fs::read_to_string(format!("/proc/{inner}/status")).unwrap();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap_or_default();
    assert!(
        nspid.trim_end().ends_with("\t1"),
        "not PID 1 in its namespace: {nspid:?}"
    );
    // Signal the service (started by this test) by its PID here.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(inner), Signal::SIGTERM).unwrap();
    let ended = namespace.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.has("main wound down, holding connection 1"),
        "{ended}"
    );
    assert!(ended.has("last"), "{ended}");
}
