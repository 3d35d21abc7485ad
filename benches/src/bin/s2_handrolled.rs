//! S2 hand-rolled: 100 tasks that each sleep 100 ms after cancellation.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() {
    let units: usize = env!("S2_UNITS").parse().expect("S2_UNITS");
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    for _ in 0..units {
        let token = token.clone();
        tracker.spawn(async move {
            token.cancelled().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        });
    }
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    println!("READY");
    term.recv().await;
    token.cancel();
    tracker.close();
    tracker.wait().await;
}
