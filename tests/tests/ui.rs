//! The compile-time suite: every accepted form compiles and runs
//! (`ui/pass`), every misconfiguration fails with the message in its
//! `.stderr` snapshot (`ui/fail`).
//!
//! Snapshots hold rustc's exact output, which changes between compiler
//! releases, so the fail cases run only on the release they were written
//! with (the `STABLE` line below). Regenerate them with
//! `TRYBUILD=overwrite cargo test -p lichtara-tests --test ui` and review
//! the diff. trybuild writes new output to `wip/` (ignored by git).

use std::process::Command;

// STABLE: 1.95
const SNAPSHOT_RUSTC: &str = "1.95";

fn rustc_release() -> Option<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc).arg("--version").output().ok()?;
    let version = String::from_utf8(output.stdout).ok()?;
    // "rustc 1.95.0 (59807616e 2026-04-14)" -> "1.95"
    let release = version.split_whitespace().nth(1)?;
    Some(release.splitn(3, '.').take(2).collect::<Vec<_>>().join("."))
}

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    match rustc_release() {
        Some(release) if release == SNAPSHOT_RUSTC => cases.compile_fail("ui/fail/*.rs"),
        other => eprintln!(
            "skipping ui/fail: snapshots were written with rustc {SNAPSHOT_RUSTC}, this is {other:?}"
        ),
    }
}

/// No message a user sees names the hidden `__private` module: every
/// trait and function a compile error can name lives at `lichtara::hook`.
#[test]
fn no_snapshot_shows_a_private_path() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/ui/fail");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("ui/fail") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "stderr") {
            let text = std::fs::read_to_string(&path).expect("snapshot");
            assert!(!text.contains("__private"), "{}:\n{text}", path.display());
            checked += 1;
        }
    }
    assert!(checked > 40, "only {checked} snapshots found");
}
