//! A `Type=notify` service: READY once set up, a slow hook at shutdown
//! (systemd must hear EXTEND_TIMEOUT_USEC while it runs).

use std::time::Duration;

#[lichtara::cleanup(timeout = "5s")]
async fn slow_flush() {
    lichtara_tests::event("slow_flush started");
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[lichtara::main]
async fn main() {
    lichtara::systemd::ready();
    lichtara_tests::event("READY");
    lichtara::signalled().await;
}
