//! Hooks that do not finish, picked by `MODE`: `async_stuck` (an async hook
//! that never ends, no timeout of its own: the global deadline of 1 s cuts
//! it, the next phase is not run, exit 124), `sync_blocked` (a sync hook
//! blocked for an hour with `timeout = "300ms"`: abandoned, the sequence
//! goes on, exit 1 — the blocked thread does not hold the process).

use std::time::Duration;

use lichtara_tests::event;

fn mode() -> String {
    std::env::var("MODE").unwrap_or_default()
}

#[lichtara::cleanup(order = 1)]
async fn async_stuck() {
    if mode() == "async_stuck" {
        event("async_stuck started");
        std::future::pending::<()>().await;
    }
}

#[lichtara::cleanup(order = 1, timeout = "300ms")]
fn sync_blocked() {
    if mode() == "sync_blocked" {
        event("sync_blocked started");
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[lichtara::cleanup(order = 2)]
async fn after() {
    event("after ran");
}

#[lichtara::main(timeout = "1s")]
async fn main() {
    event("READY");
    lichtara::signalled().await;
}
