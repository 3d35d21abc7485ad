//! The fault matrix: each cell runs the `faults` service with one fault and
//! checks that the sequence ended within the deadline (no exit 124 unless
//! the cell is about the deadline), that every hook that could run ran
//! exactly once, that the log's report says what happened, and that the
//! exit code follows the table in the README.
//!
//! | cell | exit |
//! |---|---|
//! | a hook panics / errs / hangs / blocks its thread (sync or async) | 1 |
//! | a hook allocates 256 MiB | 0 |
//! | SIGTERM pending when the process starts (blocked by its parent) | 0 |
//! | SIGTERM during `main` | 0 |
//! | a second SIGTERM during phase 0, 1 or 2 | dies of SIGTERM |
//! | a first SIGTERM during a phase, after `main` returned | 0 |
//! | a second SIGTERM during the report | dies of SIGTERM |
//! | a first SIGTERM during the report, after `main` returned | 0 |
//! | a burst of 100 SIGTERMs | 0 |
//! | `main` panics while winding down | 101 |
//! | a task of `main`'s panics while the hooks run | 0 |
//! | the global deadline passes during a phase | 124 |
//! | stderr a full pipe nobody reads, a hook blocked writing to it (and a signal meanwhile) | 124 |
//! | stderr a full pipe nobody reads from the start: "shutdown begun" blocks | 124 |
//! | stderr a full pipe nobody reads, the exit (or the summary) blocked on it | the sequence's (0), report complete |
//!
//! The SIGKILL-in-the-middle cell, which needs the manager, is in
//! lichtara-cleanup/tests/cli.rs.

#![cfg(unix)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use lichtara_tests::harness::{Ended, Proc, outside_repeat_window};
use nix::sys::signal::Signal;

const FAULTS: &str = env!("CARGO_BIN_EXE_faults");
const HOOKS: [(&str, i32); 4] = [("first_a", 0), ("first_b", 0), ("second", 1), ("third", 2)];

fn start(env: &[(&str, &str)]) -> Proc {
    let mut command = Proc::command(FAULTS, &[], env);
    command.stdin(Stdio::piped());
    let mut proc = Proc::spawn(command);
    proc.wait_for_line("READY");
    proc
}

/// How many times `line` is on stdout.
fn count(ended: &Ended, line: &str) -> usize {
    ended.stdout.iter().filter(|l| *l == line).count()
}

/// The outcome the log's report gives `hook`; asserts it is given once.
fn outcome(ended: &Ended, hook: &str) -> String {
    let needle = format!("hook=\"faults::{hook}\"");
    let lines: Vec<&str> = ended
        .stderr
        .lines()
        .filter(|line| line.contains(&needle))
        .collect();
    assert_eq!(lines.len(), 1, "{hook} reported once:\n{ended}");
    let rest = &lines[0][lines[0].find("outcome=\"").expect("an outcome") + 9..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// Every hook started exactly once; the report gives each the outcome
/// `expected` lists (`ok` for the others).
fn assert_every_hook_ran_once(ended: &Ended, expected: &[(&str, &str)]) {
    for (hook, _) in HOOKS {
        assert_eq!(
            count(ended, &format!("start {hook}")),
            1,
            "{hook}:\n{ended}"
        );
        let want = expected
            .iter()
            .find(|(name, _)| *name == hook)
            .map_or("ok", |(_, outcome)| outcome);
        assert_eq!(outcome(ended, hook), want, "{hook}:\n{ended}");
    }
}

/// Signals sent `spread` apart, well within lichtara's 100 ms repeat window
/// when `spread < within` (the rest of the window is the margin for
/// lichtara's own delay in reading them), are one request: a clean exit,
/// every hook run once. When the sender was descheduled past `within` (a
/// noisy machine), the late one may rightly be a second signal: then
/// either end is right.
fn assert_one_request(ended: &Ended, spread: Duration, within: Duration) {
    if spread < within {
        assert_eq!(ended.code(), Some(0), "signals {spread:?} apart:\n{ended}");
        assert_every_hook_ran_once(ended, &[]);
        assert!(!ended.stderr.contains("second signal"), "{ended}");
    } else {
        assert!(
            ended.code() == Some(0) || ended.signal() == Some(Signal::SIGTERM as i32),
            "signals {spread:?} apart:\n{ended}"
        );
    }
}

#[test]
fn faulty_hooks_are_contained_and_reported() {
    let cells: [(&str, &str, &str, i32); 7] = [
        ("first_a", "panic", "panicked", 1),
        ("first_b", "error", "error", 1),
        ("second", "hang", "timed out", 1),
        ("second", "block", "timed out", 1),
        ("first_a", "block", "timed out", 1),
        ("first_b", "block", "timed out", 1),
        ("third", "alloc", "ok", 0),
    ];
    // Independent processes: run side by side, so that the cells that wait
    // out a timeout do not add up.
    std::thread::scope(|scope| {
        for (hook, fault, reported, code) in cells {
            scope.spawn(move || {
                let variable = format!("FAULT_{}", hook.to_uppercase());
                let mut proc = start(&[(&variable, fault)]);
                proc.signal(Signal::SIGTERM);
                let ended = proc.wait();
                assert_eq!(ended.code(), Some(code), "{hook}={fault}:\n{ended}");
                assert_every_hook_ran_once(&ended, &[(hook, reported)]);
            });
        }
    });
}

#[test]
fn a_hook_blocking_its_thread_does_not_hold_back_its_phase() {
    let mut proc = start(&[("FAULT_FIRST_A", "block")]);
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(1), "{ended}");
    // first_b, in the same phase, ended long before first_a's timeout.
    let reported = |hook: &str| {
        let needle = format!("hook=\"faults::{hook}\"");
        ended
            .stderr
            .lines()
            .position(|line| line.contains(&needle))
            .unwrap_or_else(|| panic!("{hook} not reported:\n{ended}"))
    };
    assert!(reported("first_b") < reported("first_a"), "{ended}");
}

#[test]
fn a_signal_pending_at_startup_is_handled_once_lichtara_listens() {
    // The parent blocked SIGTERM and it arrived before `main` ran: the
    // mask and the pending signal are inherited across exec.
    let mut command = Proc::command(FAULTS, &[], &[]);
    command.stdin(Stdio::piped());
    // SAFETY: only async-signal-safe calls (sigprocmask, kill) between
    // fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(Signal::SIGTERM);
            set.thread_block()?;
            nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGTERM)?;
            Ok(())
        });
    }
    let mut proc = Proc::spawn(command);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.stderr.contains("trigger=\"signal SIGTERM\""),
        "{ended}"
    );
    assert_every_hook_ran_once(&ended, &[]);
}

#[test]
fn a_signal_during_main_runs_every_hook_once() {
    let mut proc = start(&[]);
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.has("main wound down"), "{ended}");
    assert_every_hook_ran_once(&ended, &[]);
}

#[test]
fn a_second_signal_during_any_phase_ends_the_process_at_once() {
    for (index, (hook, _)) in HOOKS.iter().enumerate() {
        let variable = format!("FAULT_{}", hook.to_uppercase());
        let mut proc = start(&[(&variable, "wait")]);
        proc.signal(Signal::SIGTERM);
        proc.wait_for_line(&format!("start {hook}"));
        outside_repeat_window();
        proc.signal(Signal::SIGTERM);
        let ended = proc.wait();
        assert_eq!(
            ended.signal(),
            Some(Signal::SIGTERM as i32),
            "{hook}:\n{ended}"
        );
        assert!(
            ended.stderr.contains("second signal during shutdown"),
            "{ended}"
        );
        // The hooks of earlier phases ran once; none of a later phase ran.
        let order = HOOKS[index].1;
        for (other, other_order) in HOOKS {
            let started = count(&ended, &format!("start {other}"));
            if other_order < order {
                assert_eq!(started, 1, "{other} before {hook}:\n{ended}");
            } else if other_order > order {
                assert_eq!(started, 0, "{other} after {hook}:\n{ended}");
            }
        }
        assert_eq!(count(&ended, &format!("end {hook}")), 0, "{ended}");
    }
}

#[test]
fn a_first_signal_during_a_phase_after_main_returned_is_noted_and_the_sequence_goes_on() {
    // `third` waits: its 30 s timeout outlasts a test thread that a
    // loaded machine holds back (`second`'s 3 s did not, under load).
    let mut proc = start(&[("MAIN", "return"), ("FAULT_THIRD", "wait")]);
    proc.wait_for_line("start third");
    proc.signal(Signal::SIGTERM);
    proc.wait_for_log("signal received during shutdown");
    proc.send_line("release");
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.stderr.contains("trigger=\"main returned\""),
        "{ended}"
    );
    assert_every_hook_ran_once(&ended, &[]);
}

#[test]
fn a_signal_during_the_report() {
    // After main returned: noted; the report completes and the exit is 0.
    let mut proc = start(&[("MAIN", "return"), ("REPORT_PAUSE", "1")]);
    proc.wait_for_line("reporting");
    proc.signal(Signal::SIGTERM);
    proc.wait_for_log("signal received during shutdown");
    proc.send_line("report");
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert_every_hook_ran_once(&ended, &[]);

    // After a SIGTERM: it is the second signal, and ends the process.
    let mut proc = start(&[("REPORT_PAUSE", "1")]);
    proc.signal(Signal::SIGTERM);
    proc.wait_for_line("reporting");
    outside_repeat_window();
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.signal(), Some(Signal::SIGTERM as i32), "{ended}");
    assert_every_hook_ran_once(&ended, &[]);
}

#[test]
fn a_burst_of_100_signals_is_one_request() {
    let mut proc = start(&[]);
    let began = Instant::now();
    for _ in 0..100 {
        proc.signal(Signal::SIGTERM);
    }
    let burst = began.elapsed();
    let ended = proc.wait();
    assert_one_request(&ended, burst, Duration::from_millis(30));
}

#[test]
fn a_duplicate_arriving_after_the_first_was_handled_is_the_same_request() {
    // What a Ctrl-C sent to a process group and forwarded by a wrapper looks
    // like: the same request delivered twice, a moment apart.
    let mut proc = start(&[("FAULT_FIRST_A", "wait")]);
    let first = Instant::now();
    proc.signal(Signal::SIGINT);
    proc.wait_for_line("start first_a");
    let gap = first.elapsed();
    proc.signal(Signal::SIGTERM);
    proc.send_line("release");
    let ended = proc.wait();
    assert_one_request(&ended, gap, Duration::from_millis(20));
}

#[test]
fn main_panicking_while_winding_down_still_runs_every_hook_and_exits_101() {
    let mut proc = start(&[("MAIN", "panic")]);
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(101), "{ended}");
    assert!(ended.stderr.contains("main panicked"), "{ended}");
    assert_every_hook_ran_once(&ended, &[]);
}

#[test]
fn a_task_of_mains_panicking_while_hooks_run_changes_nothing() {
    let mut proc = start(&[("MAIN", "spawn_panic")]);
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.stderr.contains("a task of main's panicked"),
        "{ended}"
    );
    assert_every_hook_ran_once(&ended, &[]);
}

#[test]
fn the_global_deadline_passing_during_a_phase_exits_124_and_reports_the_rest_not_run() {
    let mut proc = start(&[
        ("FAULT_FIRST_A", "wait"),
        ("LICHTARA_SHUTDOWN_TIMEOUT", "2s"),
    ]);
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(124), "{ended}");
    assert_eq!(outcome(&ended, "first_a"), "timed out", "{ended}");
    assert_eq!(outcome(&ended, "first_b"), "ok", "{ended}");
    for hook in ["second", "third"] {
        assert_eq!(outcome(&ended, hook), "not run", "{ended}");
        assert_eq!(count(&ended, &format!("start {hook}")), 0, "{ended}");
    }
}

const STUCK_STDERR: &str = env!("CARGO_BIN_EXE_stuck_stderr");

/// Runs `stuck_stderr` with stderr a pipe this test never reads (and, with
/// `signal_at`, sends SIGTERM once stdout shows that line), and returns its
/// exit code: it must end, however stuck its writes are.
fn with_stderr_unread(stuck: &str, env: &[(&str, &str)], signal_at: Option<&str>) -> Option<i32> {
    use std::io::BufRead;
    let mut env = env.to_vec();
    env.push(("STUCK", stuck));
    let mut command = Proc::command(STUCK_STDERR, &[], &env);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start stuck_stderr");
    // Held open, never read: the pipe fills and stays full.
    let unread = child.stderr.take();
    let pid = i32::try_from(child.id()).expect("pid fits");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    if let Some(line) = signal_at {
        let mut seen = String::new();
        // Bounded: the child's exit closes stdout.
        while stdout.read_line(&mut seen).is_ok_and(|read| read > 0) && !seen.contains(line) {}
        if seen.contains(line) {
            // By the PID this test started.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let exited = lichtara_tests::harness::wait_exited(&[pid]);
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().expect("reap stuck_stderr");
    drop(unread);
    assert!(exited, "still running with a full stderr: {status:?}");
    status.code()
}

#[test]
fn a_hook_stuck_on_a_full_stderr_does_not_keep_the_process_past_the_deadline() {
    // The sequencer blocks too, on the line that says the hook timed out:
    // the watchdog's own line would block as well, and it exits without.
    let info = [("RUST_LOG", "info")];
    assert_eq!(with_stderr_unread("hook", &info, None), Some(124));
    // A signal meanwhile: the supervisor blocks on its warning; the
    // watchdog, a thread of its own that writes nothing, still ends it.
    assert_eq!(
        with_stderr_unread("hook", &info, Some("filling")),
        Some(124)
    );
}

#[test]
fn a_shutdown_whose_first_line_blocks_still_ends_at_the_deadline() {
    let info = [("RUST_LOG", "info")];
    // "shutdown begun" blocks the thread that triggered: main's, or the
    // supervisor's at a signal. The watchdog was armed before the line.
    assert_eq!(with_stderr_unread("exit", &info, None), Some(124));
    assert_eq!(
        with_stderr_unread("signal", &info, Some("READY")),
        Some(124)
    );
}

#[test]
fn an_exit_stuck_flushing_a_full_stderr_is_ended_with_its_code() {
    // Every hook ended ok: the exit code is the sequence's, 0.
    assert_eq!(
        with_stderr_unread("exit", &[("RUST_LOG", "off")], None),
        Some(0)
    );
}

#[test]
fn a_summary_stuck_on_a_full_stderr_keeps_the_code_and_the_whole_report() {
    let dir = std::env::temp_dir().join(format!("lichtara-stuck-summary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let path = dir.join("report.json");
    // Only the summary logs, and the hook has filled the pipe before it.
    let env = [
        ("RUST_LOG", "lichtara::drive=info"),
        ("LICHTARA_REPORT", path.to_str().expect("UTF-8 path")),
    ];
    assert_eq!(with_stderr_unread("full", &env, None), Some(0));
    let report = lichtara_tests::harness::valid_report(&path);
    assert!(report.contains("\"complete\": true"), "{report}");
    assert!(report.contains("\"outcome\": \"ok\""), "{report}");
    std::fs::remove_dir_all(&dir).expect("cleaned up");
}
