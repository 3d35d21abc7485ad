//! S4 with lichtara: an axum app served by `lichtara::http::Server`;
//! `GET /slow?ms=N` answers after N ms. Prints `READY <addr>`; serves on
//! its first argument's address if given.

use std::time::Duration;

use axum::http::Uri;
use axum::routing::get;

async fn slow(uri: Uri) -> &'static str {
    let ms = uri
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    "done\n"
}

#[lichtara::main]
async fn main() -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/", get(|| async { "ok\n" }))
        .route("/slow", get(slow));
    // An address to serve on (an inherited listener's, under `lichtara
    // start --listen`), else any free port.
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let server = lichtara::http::Server::bind(addr)
        .await?
        .drain_timeout(Duration::from_secs(2));
    println!("READY {}", server.local_addr()?);
    server.serve(app).await
}
