//! S1 hand-rolled, the way tokio-util's docs pair CancellationToken and
//! TaskTracker: `S1_UNITS` (10,000 unless the driver says otherwise) tasks
//! each wait for cancellation, then do their no-op cleanup; READY, then
//! SIGTERM cancels and the tracker is awaited.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() {
    let units = lichtara_bench::s1_units();
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    for _ in 0..units {
        let token = token.clone();
        tracker.spawn(async move {
            token.cancelled().await;
            // the no-op cleanup
        });
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("register SIGTERM");
    println!("READY");
    term.recv().await;
    token.cancel();
    tracker.close();
    tracker.wait().await;
}
