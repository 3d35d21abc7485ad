//! Every way a process ends without a signal, and the exit code each gives.

use lichtara_tests::harness::{Ended, Proc, valid_report};

fn run(program: &str, mode: &str) -> Ended {
    let mut proc = Proc::start(program, &[("MODE", mode)]);
    proc.wait()
}

const FAILING: &str = env!("CARGO_BIN_EXE_failing");
const DEADLINE: &str = env!("CARGO_BIN_EXE_deadline");
const SERVICE: &str = env!("CARGO_BIN_EXE_service");

fn all_hooks_ran(ended: &Ended) {
    for line in ["maybe_fails ran", "sibling ran", "later ran", "pool closed"] {
        assert!(ended.has(line), "missing {line:?}:\n{ended}");
    }
}

#[test]
fn main_returning_runs_the_hooks_and_exits_0() {
    let ended = run(FAILING, "ok");
    assert_eq!(ended.code(), Some(0), "{ended}");
    all_hooks_ran(&ended);
    assert!(
        ended.stderr.contains("trigger=\"main returned\""),
        "{ended}"
    );
}

#[test]
fn main_returning_err_exits_1_after_the_hooks() {
    let ended = run(FAILING, "main_err");
    assert_eq!(ended.code(), Some(1), "{ended}");
    all_hooks_ran(&ended);
    // Through tracing, so a JSON subscriber gets it too; not std's
    // `Error: …` line.
    assert!(
        ended
            .stderr
            .contains("main returned an error: \"main gave up\""),
        "{ended}"
    );
    assert!(!ended.stderr.contains("Error: "), "{ended}");
}

#[test]
fn main_panicking_exits_101_after_the_hooks() {
    let ended = run(FAILING, "main_panic");
    assert_eq!(ended.code(), Some(101), "{ended}");
    all_hooks_ran(&ended);
    assert!(ended.stderr.contains("main exploded"), "{ended}");
}

#[test]
fn main_exit_code_is_kept() {
    let ended = run(FAILING, "exit_code");
    assert_eq!(ended.code(), Some(3), "{ended}");
    all_hooks_ran(&ended);
}

#[test]
fn a_failing_hook_is_reported_the_others_run_and_the_exit_is_1() {
    let ended = run(FAILING, "hook_err");
    assert_eq!(ended.code(), Some(1), "{ended}");
    all_hooks_ran(&ended);
    assert!(ended.stderr.contains("the disk is full"), "{ended}");
    assert!(
        ended.stderr.contains("shutdown finished with errors"),
        "{ended}"
    );
}

#[test]
fn a_panicking_hook_is_reported_the_others_run_and_the_exit_is_1() {
    let ended = run(FAILING, "hook_panic");
    assert_eq!(ended.code(), Some(1), "{ended}");
    all_hooks_ran(&ended);
    assert!(ended.stderr.contains("outcome=\"panicked\""), "{ended}");
}

#[test]
fn programmatic_shutdown_runs_the_sequence() {
    let ended = run(SERVICE, "call");
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.has("main wound down, holding connection 1"),
        "{ended}"
    );
    assert!(ended.has("last"), "{ended}");
    assert!(
        ended.stderr.contains("trigger=\"shutdown requested\""),
        "{ended}"
    );
}

#[cfg(unix)]
mod deadline {
    use super::*;
    use nix::sys::signal::Signal;

    fn signalled(mode: &str, env: &[(&str, &str)]) -> Ended {
        let mut vars = vec![("MODE", mode)];
        vars.extend_from_slice(env);
        let mut proc = Proc::start(DEADLINE, &vars);
        proc.wait_for_line("READY");
        proc.signal(Signal::SIGTERM);
        proc.wait()
    }

    #[test]
    fn a_stuck_hook_hits_the_global_deadline_and_exits_124() {
        let ended = signalled("async_stuck", &[]);
        assert_eq!(ended.code(), Some(124), "{ended}");
        assert!(ended.has("async_stuck started"), "{ended}");
        assert!(!ended.has("after ran"), "{ended}");
        assert!(ended.stderr.contains("outcome=\"not run\""), "{ended}");
    }

    #[test]
    fn a_blocked_sync_hook_is_abandoned_at_its_timeout() {
        // The binary's 1 s deadline would leave `after` 700 ms to run once
        // the blocked hook is abandoned: a loaded machine can take longer.
        // What is tested is the abandonment, so the deadline is far away.
        let ended = signalled("sync_blocked", &[("LICHTARA_SHUTDOWN_TIMEOUT", "30s")]);
        assert_eq!(ended.code(), Some(1), "{ended}");
        assert!(ended.has("sync_blocked started"), "{ended}");
        assert!(ended.has("after ran"), "{ended}");
        assert!(ended.stderr.contains("timed out"), "{ended}");
    }

    #[test]
    fn the_environment_overrides_the_deadline() {
        let ended = signalled("async_stuck", &[("LICHTARA_SHUTDOWN_TIMEOUT", "250ms")]);
        assert_eq!(ended.code(), Some(124), "{ended}");
        assert!(ended.stderr.contains("deadline_ms=250"), "{ended}");
    }

    #[test]
    #[cfg(unix)]
    fn a_lichtara_variable_that_is_not_utf8_stops_the_start() {
        use std::os::unix::ffi::OsStrExt;
        for variable in ["LICHTARA_SHUTDOWN_TIMEOUT", "LICHTARA_HOOKS"] {
            let mut command = Proc::command(DEADLINE, &[], &[]);
            command.env(variable, std::ffi::OsStr::from_bytes(b"5s\xff"));
            let ended = Proc::spawn(command).wait();
            assert_eq!(ended.code(), Some(2), "{variable}: {ended}");
            assert!(
                ended.stderr.contains(&format!("{variable}="))
                    && ended.stderr.contains("not UTF-8"),
                "{variable}: {ended}"
            );
            assert!(!ended.has("READY"), "{variable}: {ended}");
        }
    }

    #[test]
    fn a_bad_deadline_in_the_environment_stops_the_start() {
        let ended = signalled_before_ready("soon");
        assert_eq!(ended.code(), Some(2), "{ended}");
        assert!(
            ended.stderr.contains("LICHTARA_SHUTDOWN_TIMEOUT=\"soon\""),
            "{ended}"
        );
        assert!(!ended.has("READY"), "{ended}");
    }

    fn signalled_before_ready(value: &str) -> Ended {
        let mut proc = Proc::start(DEADLINE, &[("LICHTARA_SHUTDOWN_TIMEOUT", value)]);
        proc.wait()
    }
}

#[test]
fn hooks_list_prints_the_registered_hooks_and_skips_main() {
    let ended = Proc::start(SERVICE, &[("LICHTARA_HOOKS", "list")]).wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(!ended.has("READY"), "{ended}");
    assert_eq!(ended.stdout[0], "5 cleanup hooks registered", "{ended}");
    let row = |name: &str| {
        ended
            .stdout
            .iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{ended}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("service::stop_accepting")[..2], ["-1", "5s"]);
    assert_eq!(row("service::flush_sync")[..3], ["1", "-", "fn"]);
    assert_eq!(row("service::Connection")[..3], ["0", "5s", "resource"]);
    let source = row("service::the_last_one")
        .last()
        .map(|s| s.to_string())
        .unwrap();
    assert!(source.starts_with("tests/src/bin/service.rs:"), "{source}");
    // hooklib is a dependency of this package, but service never names it
    assert!(
        !ended.stdout.iter().any(|l| l.contains("hooklib")),
        "{ended}"
    );
}

#[test]
fn hooks_list_shows_library_hooks_when_the_crate_is_named() {
    let ended = Proc::start(
        env!("CARGO_BIN_EXE_libhooks"),
        &[("LICHTARA_HOOKS", "list")],
    )
    .wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended
            .stdout
            .iter()
            .any(|l| l.contains("hooklib::library_hook")),
        "{ended}"
    );
    assert!(
        ended.stdout.iter().any(|l| l.contains("hooklib::Session")),
        "{ended}"
    );
}

/// `LICHTARA_REPORT` writes the report, valid against the documented
/// schema (checked by Python's `jsonschema`, which `.ci/run` installs).
#[test]
fn the_json_report_is_written_and_matches_its_schema() {
    let dir = std::env::temp_dir().join(format!("lichtara-report-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path = dir.join("report.json");
    let ended = Proc::start(
        FAILING,
        &[
            ("MODE", "hook_err"),
            ("LICHTARA_REPORT", path.to_str().expect("UTF-8 path")),
        ],
    )
    .wait();
    assert_eq!(ended.code(), Some(1), "{ended}");
    // The table of what did not end ok closes the log.
    assert!(
        ended.stderr.contains("hooks that did not end ok:"),
        "{ended}"
    );
    assert!(ended.stderr.contains("error: the disk is full"), "{ended}");
    let text = valid_report(&path);
    for expected in [
        "\"kind\": \"main_returned\"",
        "\"exit_code\": 1",
        "\"error\": \"the disk is full\"",
        "\"detail\": \"1 instance\"",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}

const DUPLICATE_NAMES: &str = env!("CARGO_BIN_EXE_duplicate_names");

#[test]
fn hooks_sharing_a_name_are_warned_of_at_startup_and_in_the_listing() {
    let ended = run(DUPLICATE_NAMES, "");
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended
            .stderr
            .contains("more than one cleanup hook is named \"flush\""),
        "{ended}"
    );
    let listed = Proc::start(DUPLICATE_NAMES, &[("LICHTARA_HOOKS", "list")]).wait();
    assert_eq!(listed.code(), Some(0), "{listed}");
    assert!(
        listed
            .stdout
            .iter()
            .any(|line| line.starts_with("warning: more than one hook is named \"flush\"")),
        "{listed}"
    );
}

/// The watchdog's exit at the deadline writes what is known: an
/// unfinished report, valid against the schema.
#[test]
fn the_watchdog_writes_an_unfinished_report() {
    let dir = std::env::temp_dir().join(format!("lichtara-report-wedged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path = dir.join("report.json");
    let mut proc = Proc::start(
        env!("CARGO_BIN_EXE_wedged"),
        &[("LICHTARA_REPORT", path.to_str().expect("UTF-8 path"))],
    );
    proc.wait_for_line("READY");
    proc.signal(nix::sys::signal::Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(124), "{ended}");
    let text = valid_report(&path);
    for expected in [
        "\"complete\": false",
        "\"exit_code\": 124",
        "\"deadline_passed\": true",
        "\"signal\": \"SIGTERM\"",
        "\"outcome\": \"unknown\"",
    ] {
        assert!(text.contains(expected), "missing {expected}:\n{text}");
    }
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}
