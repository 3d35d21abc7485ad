//! The main example runs end to end: it works, shuts down on SIGTERM, and
//! its hooks run in order.

#![cfg(unix)]

use lichtara_tests::harness::Proc;
use nix::sys::signal::Signal;

#[test]
fn hello_shuts_down_cleanly_on_sigterm_with_its_hooks_in_order() {
    let mut hello = Proc::start(env!("CARGO_BIN_EXE_hello"), &[]);
    hello.wait_for_prefix("hello: working");
    hello.signal(Signal::SIGTERM);
    let ended = hello.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.has("hello: main is winding down; the hooks run next"),
        "{ended}"
    );
    let at = |needle: &str| {
        ended
            .stderr
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{ended}"))
    };
    assert!(at("no longer accepting work") < at("metrics flushed"));
    assert!(at("journal synced") < at("scratch directory removed"));
    assert!(at("scratch directory removed") < at("shutdown complete"));
}
