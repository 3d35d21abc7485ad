//! `lichtara::process` children and the thread they are forked from.

#![cfg(target_os = "linux")]

use lichtara_tests::harness::Proc;

#[test]
fn a_child_spawned_from_a_blocking_thread_outlives_that_thread() {
    let ended = Proc::start(env!("CARGO_BIN_EXE_late_child"), &[]).wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.has("spawning thread exited"), "{ended}");
    assert!(ended.has("child alive"), "{ended}");
}
