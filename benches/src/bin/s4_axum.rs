//! S4 with axum 0.8 alone: `axum::serve(..).with_graceful_shutdown(SIGTERM)`,
//! as its documentation shows; `GET /slow?ms=N` answers after N ms. Prints
//! `READY <addr>`.

use std::time::Duration;

use axum::http::Uri;
use axum::routing::get;
use tokio::signal::unix::{SignalKind, signal};

async fn slow(uri: Uri) -> &'static str {
    let ms = uri
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "done\n"
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/", get(|| async { "ok\n" }))
        .route("/slow", get(slow));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mut terminate = signal(SignalKind::terminate())?;
    println!("READY {}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            terminate.recv().await;
        })
        .await
}
