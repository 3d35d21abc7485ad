//! S11 with plain tokio: 10,000 `tokio::spawn`ed tasks, spawned before
//! READY, each waiting on a `CancellationToken`; at SIGTERM the token is
//! cancelled and every handle awaited.

use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("register SIGTERM");
    let token = CancellationToken::new();
    let tasks: Vec<_> = (0..lichtara_bench::S11_TASKS)
        .map(|_| {
            let token = token.clone();
            tokio::spawn(async move { token.cancelled().await })
        })
        .collect();
    println!("READY");
    term.recv().await;
    token.cancel();
    for task in tasks {
        let _ = task.await;
    }
}
