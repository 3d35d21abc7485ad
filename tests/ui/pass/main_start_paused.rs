// start_paused needs tokio's `test-util` feature, as with #[tokio::main].

use std::time::Duration;

#[lichtara::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let start = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(start.elapsed() >= Duration::from_secs(3600));
}
