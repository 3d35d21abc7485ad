//! A long hook: a second signal while it runs must end the process at once,
//! dying of that signal.

use std::time::Duration;

use lichtara_tests::event;

#[lichtara::cleanup(timeout = "60s")]
async fn long_flush() {
    event("long_flush started");
    tokio::time::sleep(Duration::from_secs(60)).await;
    event("long_flush ended");
}

#[lichtara::main(timeout = "60s")]
async fn main() {
    event("READY");
    lichtara::signalled().await;
}
