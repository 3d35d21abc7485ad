//! The `#[tokio::main]` example: `lichtara::run` runs its hook and its
//! managed pool on SIGTERM, in order, and exits 0.

#![cfg(unix)]

use lichtara_tests::harness::Proc;
use nix::sys::signal::Signal;

#[test]
fn a_tokio_main_service_wrapped_in_run_shuts_down_with_its_hooks() {
    let mut service = Proc::start(env!("CARGO_BIN_EXE_tokio_main"), &[]);
    service.wait_for_prefix("tokio_main: listening on 127.0.0.1:");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(
        ended.position("tokio_main: metrics flushed")
            < ended.position("tokio_main: pool of 8 closed"),
        "{ended}"
    );
    assert!(ended.stderr.contains("shutdown complete"), "{ended}");
    assert!(!ended.stderr.contains("warning"), "{ended}");
}
