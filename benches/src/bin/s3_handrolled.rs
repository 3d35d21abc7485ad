//! S3 hand-rolled: one task never finishes; the tracker is awaited for at
//! most 1 s.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[tokio::main]
async fn main() {
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let waiter = token.clone();
    tracker.spawn(async move {
        waiter.cancelled().await;
        std::future::pending::<()>().await;
    });
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    println!("READY");
    term.recv().await;
    token.cancel();
    tracker.close();
    let finished = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    std::process::exit(i32::from(finished.is_err()));
}
