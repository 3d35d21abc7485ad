//! A `main` that wedges its single-threaded runtime once shutdown begins:
//! it blocks the only worker thread instead of returning. The watchdog
//! thread must still end the process at the global deadline, with 124.

use std::time::Duration;

use lichtara_tests::event;

#[lichtara::cleanup]
async fn never_reached() {
    event("never_reached ran");
}

#[lichtara::main(flavor = "current_thread", timeout = "500ms")]
async fn main() {
    event("READY");
    lichtara::signalled().await;
    event("blocking the runtime");
    std::thread::sleep(Duration::from_secs(3600));
}
