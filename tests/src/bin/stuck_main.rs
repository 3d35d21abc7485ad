//! A `main` that blocks its thread once shutdown begins, on a multi-thread
//! runtime: at its `main_timeout` (500 ms of the 2 s deadline) the hooks run without
//! it, and the process exits 1 with `main` reported timed out.

use std::time::Duration;

use lichtara_tests::event;

#[lichtara::cleanup]
async fn flush() {
    event("flushed");
}

#[lichtara::main(timeout = "2s", main_timeout = "500ms")]
async fn main() {
    event("READY");
    lichtara::signalled().await;
    event("blocking");
    std::thread::sleep(Duration::from_secs(3600));
}
