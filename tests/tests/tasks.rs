//! Tracked tasks (`lichtara::spawn`) in a real process: awaited in the
//! wind-down and reported, a failing one begins the shutdown and is named
//! as its trigger, a stuck one is abandoned in time for the hooks.

#![cfg(unix)]

use std::process::Stdio;

use lichtara_tests::harness::{Ended, Proc, valid_report};
use nix::sys::signal::Signal;

const TASKS: &str = env!("CARGO_BIN_EXE_tasks");

/// Starts `tasks` in `mode` with stdin piped, and waits for `READY`.
fn start(mode: &str, env: &[(&str, &str)]) -> Proc {
    let mut env = env.to_vec();
    env.push(("MODE", mode));
    let mut command = Proc::command(TASKS, &[], &env);
    command.stdin(Stdio::piped());
    let mut proc = Proc::spawn(command);
    proc.wait_for_line("READY");
    proc
}

/// A temporary directory of this test's own, removed by the caller.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lichtara-tasks-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

#[test]
fn tracked_tasks_wind_down_beside_main_and_are_reported() {
    let dir = scratch("serve");
    let path = dir.join("report.json");
    let mut proc = start(
        "serve",
        &[("LICHTARA_REPORT", path.to_str().expect("UTF-8 path"))],
    );
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    let flushed = ended.position("flushed");
    for task in ["consumer", "poller", "ticker"] {
        // Each task ended before the hooks ran.
        assert!(
            ended.position(&format!("{task} stopped")) < flushed,
            "{ended}"
        );
    }
    assert!(
        ended.has("late refused: task \"late\" not spawned: shutdown has begun"),
        "{ended}"
    );
    assert!(
        ended.stderr.contains("tasks wound down tasks=3 ok=3"),
        "{ended}"
    );
    let report: String = valid_report(&path);
    for task in ["consumer", "poller", "ticker"] {
        let entry = format!("\"name\": \"{task}\",\n      \"outcome\": \"ok\"");
        assert!(report.contains(&entry), "no {entry} in:\n{report}");
    }
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

/// Sends `fail` (the worker panics), and returns how the process ended.
fn worker_fails(mode: &str) -> (Proc, Option<Ended>) {
    let mut proc = start(mode, &[]);
    proc.send_line("fail");
    if mode == "log" {
        proc.wait_for_log("task worker failed: panicked: the queue is gone");
        return (proc, None);
    }
    let ended = proc.wait();
    (proc, Some(ended))
}

#[test]
fn a_task_that_panics_begins_the_shutdown_and_is_named_its_trigger() {
    let (_proc, ended) = worker_fails("panic");
    let ended = ended.expect("ended");
    // The hooks ran; the failure is the exit code's.
    assert_eq!(ended.code(), Some(1), "{ended}");
    assert!(ended.has("flushed"), "{ended}");
    assert!(
        ended.stderr.contains("trigger=task worker failed"),
        "{ended}"
    );
    assert!(ended.stderr.contains("the queue is gone"), "{ended}");
    assert!(ended.stderr.contains("[task] worker"), "{ended}");
}

#[test]
fn a_task_whose_policy_is_to_log_fails_and_the_service_goes_on() {
    let (mut proc, _) = worker_fails("log");
    proc.send_line("ping");
    proc.wait_for_line("still serving");
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    // Ended before the shutdown: logged then, not in the report.
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.has("flushed"), "{ended}");
    assert!(ended.stderr.contains("trigger=signal SIGTERM"), "{ended}");
}

#[test]
fn a_stuck_task_is_abandoned_at_half_the_deadline_and_the_hooks_still_run() {
    let mut proc = start("stuck", &[]);
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(1), "{ended}");
    assert!(ended.has("flushed"), "{ended}");
    assert!(
        ended
            .stderr
            .contains("task still running when its wind-down ended: abandoned"),
        "{ended}"
    );
    assert!(
        ended.stderr.contains("tasks wound down tasks=1 ok=0"),
        "{ended}"
    );
}
