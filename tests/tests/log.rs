//! The shutdown's log as users see it: its INFO lines grow with the
//! phases, not with the hooks.

use lichtara_tests::harness::{Ended, Proc};

const MANY_HOOKS: &str = env!("CARGO_BIN_EXE_many_hooks");

fn run(rust_log: &str) -> Ended {
    let ended = Proc::start(MANY_HOOKS, &[("RUST_LOG", rust_log)]).wait();
    assert_eq!(ended.code(), Some(1), "a hook failed:\n{ended}");
    ended
}

/// The lines of `stderr` that hold every one of `needles`.
fn lines<'a>(stderr: &'a str, needles: &[&str]) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|line| needles.iter().all(|needle| line.contains(needle)))
        .collect()
}

#[test]
fn a_large_phase_logs_one_line_its_failures_and_its_slow_hooks_at_info() {
    let ended = run("info");
    let stderr = &ended.stderr;
    // Phase 1: one line for the phase, and only the hooks worth a look.
    let phase = lines(stderr, &["phase finished", "order=1"]);
    assert_eq!(phase.len(), 1, "{stderr}");
    assert!(
        phase[0].contains("hooks=42") && phase[0].contains("ok=41"),
        "{stderr}"
    );
    let failed = lines(stderr, &["hook failed", "hook=\"many_hooks::fails\""]);
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(failed[0].contains("the disk is full"), "{stderr}");
    // The slow hook is named (as finished, or as past its timeout on a
    // machine loaded enough to stretch 1 s to 2).
    assert_eq!(
        lines(stderr, &["hook=\"many_hooks::slow\""]).len(),
        1,
        "{stderr}"
    );
    assert!(
        lines(stderr, &["hook=\"many_hooks::q"]).is_empty(),
        "no line per no-op hook at INFO:\n{stderr}"
    );
    // Phase 2 has few hooks: each has its line, and the phase none.
    for hook in ["after_a", "after_b"] {
        let needle = format!("hook=\"many_hooks::{hook}\"");
        assert_eq!(
            lines(stderr, &["hook finished", &needle]).len(),
            1,
            "{stderr}"
        );
    }
    assert!(
        lines(stderr, &["phase finished", "order=2"]).is_empty(),
        "{stderr}"
    );
    assert_eq!(
        lines(stderr, &["shutdown finished with errors"]).len(),
        1,
        "{stderr}"
    );
}

#[test]
fn at_debug_every_hook_has_its_line() {
    let ended = run("lichtara=debug");
    let stderr = &ended.stderr;
    assert_eq!(
        lines(stderr, &["hook finished", "hook=\"many_hooks::q"]).len(),
        40,
        "{stderr}"
    );
    assert_eq!(lines(stderr, &["phase finished"]).len(), 2, "{stderr}");
}
