//! Adopting lichtara in a service that keeps `#[tokio::main]`: hooks that
//! nothing runs are said so, never silently skipped; `LICHTARA_HOOKS=list`
//! works without `#[lichtara::main]`; `lichtara::run` runs them.

use lichtara_tests::harness::Proc;
use nix::sys::signal::Signal;

const TOKIO_HOOKS: &str = env!("CARGO_BIN_EXE_tokio_hooks");

/// Its own two hooks and the library's two.
const HOOKS: usize = 4;

#[test]
fn hooks_that_no_lifecycle_runs_are_warned_of_at_exit() {
    let ended = Proc::start(TOKIO_HOOKS, &[("MODE", "none")]).wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.has("main returned"), "{ended}");
    assert!(!ended.has("flush ran"), "{ended}");
    let warning =
        format!("{HOOKS} cleanup hook(s) registered but no lichtara lifecycle ran in this program");
    assert!(ended.stderr.contains(&warning), "{ended}");
    assert!(ended.stderr.contains("lichtara::run(app).await"), "{ended}");
}

#[test]
fn waiting_on_signalled_without_a_lifecycle_is_warned_of() {
    let ended = Proc::start(TOKIO_HOOKS, &[("MODE", "signalled")]).wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.stderr.contains(
            "lichtara::signalled() is used but no lichtara lifecycle runs in this program"
        ),
        "{ended}"
    );
    assert!(
        ended.stderr.contains(&format!(
            "the {HOOKS} registered cleanup hook(s) will not run"
        )),
        "{ended}"
    );
}

#[test]
fn the_hook_listing_works_without_lichtara_main() {
    let ended = Proc::start(TOKIO_HOOKS, &[("MODE", "none"), ("LICHTARA_HOOKS", "list")]).wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(!ended.has("READY"), "main must not run:\n{ended}");
    let listing = ended.stdout.join("\n");
    assert!(
        listing.contains(&format!("{HOOKS} cleanup hooks registered")),
        "{ended}"
    );
    for name in [
        "tokio_hooks::flush",
        "tokio_hooks::Pool",
        "library_hook",
        "hooklib::Session",
    ] {
        assert!(listing.contains(name), "missing {name}:\n{ended}");
    }
    // Listing is what was asked: no warning that the hooks did not run.
    assert!(!ended.stderr.contains("warning"), "{ended}");
}

#[test]
fn lichtara_run_under_tokio_main_runs_the_hooks_on_a_signal() {
    let mut service = Proc::start(TOKIO_HOOKS, &[("MODE", "run")]);
    service.wait_for_line("READY");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    for line in [
        "wound down",
        "flush ran",
        "pool closed",
        "hooklib: library_hook ran",
    ] {
        assert!(ended.has(line), "missing {line:?}:\n{ended}");
    }
    assert!(
        ended.position("flush ran") < ended.position("pool closed"),
        "{ended}"
    );
    // It ends the process: `main` does not go on after it.
    assert!(!ended.has("main returned"), "{ended}");
    assert!(!ended.stderr.contains("warning"), "{ended}");
}
