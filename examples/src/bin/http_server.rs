//! The reference server: an axum app served by `lichtara::http::Server`, so
//! that shutdown turns readiness to 503, waits out the drain delay, closes
//! the listener, closes idle keep-alive connections at once, lets requests
//! in flight finish, sends WebSockets close 1001, and cuts what is left at
//! the drain timeout.
//!
//! ```text
//! cargo run -p lichtara-examples --bin http_server -- --addr 127.0.0.1:3000
//! curl localhost:3000/slow?ms=3000 & kill -TERM <pid>   # the request still completes
//! ```
//!
//! Routes: `GET /` (quick), `GET /slow?ms=N` (answers after N ms),
//! `GET /ready` (200, then 503 once shutdown begins), `GET /ws` (echo).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;
use axum::routing::get;
use clap::Parser;
use serde::Deserialize;

/// The reference server of lichtara-cleanup.
#[derive(Debug, Parser)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// How long to keep accepting after shutdown begins (readiness is 503
    /// meanwhile).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    drain_delay: Duration,
    /// How long connections get to finish before they are cut.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    drain_timeout: Duration,
}

#[derive(Debug, Deserialize)]
struct Slow {
    ms: u64,
}

async fn slow(Query(Slow { ms }): Query<Slow>) -> String {
    // An access-log line: tests wait for it to know the request is in flight.
    println!("slow request started ({ms} ms)");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|socket| async move {
        let mut session = lichtara::http::ws::Session::new(socket);
        while let Some(Ok(message)) = session.recv().await {
            if session.send(message).await.is_err() {
                break;
            }
        }
    })
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "ok\n" }))
        .route("/slow", get(slow))
        .route("/ready", get(lichtara::http::ready))
        .route("/ws", get(ws))
}

#[lichtara::main(timeout = "30s")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = lichtara::http::Server::bind(args.addr)
        .await?
        .drain_delay(args.drain_delay)
        .drain_timeout(args.drain_timeout);
    println!("listening on http://{}", server.local_addr()?);
    server.serve(app()).await?;
    Ok(())
}
