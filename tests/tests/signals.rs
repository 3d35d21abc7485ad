//! Real signals sent to real processes: the shutdown sequence, observed from
//! outside through what the hooks print and how the process ends.

#![cfg(unix)]

use lichtara_tests::harness::Proc;
use nix::sys::signal::Signal;

const SERVICE: &str = env!("CARGO_BIN_EXE_service");

fn serve_then(signal: Signal) -> lichtara_tests::harness::Ended {
    let mut service = Proc::start(SERVICE, &[("MODE", "serve")]);
    service.wait_for_line("READY");
    service.signal(signal);
    service.wait()
}

#[test]
fn sigterm_runs_every_phase_in_order_and_exits_0() {
    let ended = serve_then(Signal::SIGTERM);
    assert_eq!(ended.code(), Some(0), "{ended}");
    // main wound down before any hook ran
    let main_done = ended.position("main wound down, holding connection 1");
    let first = ended.position("start stop_accepting");
    assert!(main_done < first, "{ended}");
    // order -1, then 0 (the resource), then the two order-1 hooks together, then order 2
    let first_end = ended.position("end stop_accepting");
    let connection = ended.position("close connection 1");
    let starts = [
        ended.position("start flush_sync"),
        ended.position("start flush_async"),
    ];
    let ends = [
        ended.position("end flush_sync"),
        ended.position("end flush_async"),
    ];
    let last = ended.position("last");
    assert!(first_end < connection, "{ended}");
    assert!(starts.iter().all(|s| connection < *s), "{ended}");
    assert!(
        starts.iter().all(|s| ends.iter().all(|e| s < e)),
        "the two order-1 hooks must overlap:\n{ended}"
    );
    assert!(ends.iter().all(|e| *e < last), "{ended}");
    assert!(ended.stderr.contains("shutdown complete"), "{ended}");
    assert!(
        ended.stderr.contains("trigger=\"signal SIGTERM\""),
        "{ended}"
    );
    assert!(ended.stderr.contains("service::the_last_one"), "{ended}");
}

#[test]
fn managed_instances_are_cleaned_without_their_handles_and_a_released_one_is_not() {
    let ended = serve_then(Signal::SIGTERM);
    for kept in [
        "close connection 1",
        "close connection 2",
        "close connection 3",
        "close connection 5",
    ] {
        assert!(ended.has(kept), "missing {kept:?}:\n{ended}");
    }
    assert!(!ended.has("close connection 4"), "{ended}");
    // The log says how many the resource hook cleaned.
    assert!(ended.stderr.contains("detail=\"4 instances\""), "{ended}");
}

#[test]
fn sigint_and_sighup_also_shut_down_cleanly() {
    for (signal, name) in [(Signal::SIGINT, "SIGINT"), (Signal::SIGHUP, "SIGHUP")] {
        let ended = serve_then(signal);
        assert_eq!(ended.code(), Some(0), "{ended}");
        assert!(ended.has("last"), "{ended}");
        assert!(ended.stderr.contains(&format!("signal {name}")), "{ended}");
    }
}

#[test]
fn a_main_that_ignores_shutdown_is_dropped_and_its_resources_still_cleaned() {
    let mut service = Proc::start(SERVICE, &[("MODE", "ignore")]);
    service.wait_for_line("READY");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        !ended
            .stdout
            .iter()
            .any(|l| l.starts_with("main wound down")),
        "{ended}"
    );
    assert!(ended.has("close connection 1"), "{ended}");
    assert!(ended.has("last"), "{ended}");
}

#[test]
fn a_second_signal_during_shutdown_ends_the_process_by_that_signal() {
    let mut proc = Proc::start(env!("CARGO_BIN_EXE_second_signal"), &[]);
    proc.wait_for_line("READY");
    proc.signal(Signal::SIGTERM);
    proc.wait_for_line("long_flush started");
    lichtara_tests::harness::outside_repeat_window();
    proc.signal(Signal::SIGINT);
    let ended = proc.wait();
    assert_eq!(ended.signal(), Some(Signal::SIGINT as i32), "{ended}");
    assert!(!ended.has("long_flush ended"), "{ended}");
    assert!(
        ended.stderr.contains("second signal during shutdown"),
        "{ended}"
    );
}

#[test]
fn a_wedged_runtime_is_ended_by_the_watchdog_at_the_deadline() {
    let mut proc = Proc::start(env!("CARGO_BIN_EXE_wedged"), &[]);
    proc.wait_for_line("READY");
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(124), "{ended}");
    assert!(ended.has("blocking the runtime"), "{ended}");
    assert!(!ended.has("never_reached ran"), "{ended}");
    assert!(ended.stderr.contains("global deadline passed"), "{ended}");
}

#[test]
fn hooks_in_a_library_crate_run_when_the_binary_names_it() {
    let mut proc = Proc::start(env!("CARGO_BIN_EXE_libhooks"), &[]);
    proc.wait_for_line("READY");
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.has("hooklib: library_hook ran"), "{ended}");
}

#[test]
fn the_renamed_crate_form_registers_and_runs() {
    let mut proc = Proc::start(env!("CARGO_BIN_EXE_renamed"), &[]);
    proc.wait_for_line("READY");
    proc.signal(Signal::SIGTERM);
    let ended = proc.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    let main_done = ended.position("renamed main wound down");
    let session = ended.position("hooklib: session 7 closed");
    let hook = ended.position("hooklib: library_hook ran");
    assert!(main_done < session && session < hook, "{ended}");
}

const EARLY_SIGNAL: &str = env!("CARGO_BIN_EXE_early_signal");

/// A SIGTERM sent the moment the program runs its constructors lands
/// before `main`, the runtime and lichtara's own handlers: it is recorded,
/// and the shutdown runs for it once lichtara listens. (Before the program
/// runs at all, in the dynamic loader, no code of it can help: a parent
/// that must signal that early blocks the signal across exec, a case of
/// the fault matrix.)
#[test]
fn a_sigterm_sent_before_main_still_runs_the_hooks() {
    for run in 0..50 {
        let mut command = Proc::command(EARLY_SIGNAL, &[], &[("HOLD", "1")]);
        command.stdin(std::process::Stdio::piped());
        let mut service = Proc::spawn(command);
        service.wait_for_line("loaded");
        service.signal(Signal::SIGTERM);
        service.send_line("go");
        let ended = service.wait();
        assert_eq!(ended.code(), Some(0), "run {run}: {ended}");
        assert!(ended.has("flushed"), "run {run}: {ended}");
    }
}

/// A child forked without exec inherits the early handler: it must still
/// die of SIGTERM, not record it for a supervisor it does not have.
#[test]
fn a_child_forked_without_exec_dies_of_sigterm() {
    use lichtara_tests::harness::wait_exited;
    use nix::unistd::Pid;
    let mut service = Proc::start(EARLY_SIGNAL, &[("FORK", "1")]);
    let line = service.wait_for_prefix("forked ");
    let child = Pid::from_raw(line["forked ".len()..].parse().expect("a PID"));
    service.wait_for_line("READY");
    // The test's grandchild, made by the process it started; unreaped
    // until the service reaps it, so the PID is still the child's.
    nix::sys::signal::kill(child, Signal::SIGTERM).expect("signal the forked child");
    if !wait_exited(&[child.as_raw()]) {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        panic!("the forked child outlived a SIGTERM");
    }
    let reaped = service.wait_for_prefix("reaped ");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(reaped, "reaped SIGTERM", "{ended}");
    assert_eq!(ended.code(), Some(0), "{ended}");
}

const NOT_ENTRY: &str = env!("CARGO_BIN_EXE_not_entry");

/// The early handler holds a signal for lichtara's entry point only so
/// long: a program that never runs it dies of SIGTERM as without lichtara.
#[test]
fn a_program_that_never_runs_the_entry_point_still_dies_of_sigterm() {
    let mut program = Proc::start(NOT_ENTRY, &[]);
    program.wait_for_line("READY");
    // Past the 1 s the handler holds a signal for an entry point that has
    // not run: a property of time, no event to await.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    program.signal(Signal::SIGTERM);
    let ended = program.wait();
    assert_eq!(ended.signal(), Some(Signal::SIGTERM as i32), "{ended}");
}

const STUCK_MAIN: &str = env!("CARGO_BIN_EXE_stuck_main");

/// A `main` that blocks its thread while winding down cannot hold the
/// hooks: they run at its timeout, on the other threads.
#[test]
fn a_main_blocking_its_thread_is_left_behind_and_the_hooks_still_run() {
    let mut service = Proc::start(STUCK_MAIN, &[]);
    service.wait_for_line("READY");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(1), "{ended}");
    assert!(
        ended.position("blocking") < ended.position("flushed"),
        "{ended}"
    );
    assert!(
        ended
            .stderr
            .contains("main was still winding down at its timeout; the hooks run without it"),
        "{ended}"
    );
}
