//! Keeping `#[tokio::main]` (the README's "Keeping `#[tokio::main]`"): an
//! axum service that wraps itself in `lichtara::run`, which runs its hooks
//! and managed instances at shutdown and ends the process with the report's
//! exit code. Listens on 127.0.0.1, port `PORT` (default: any free one).

use std::net::{Ipv4Addr, SocketAddr};

/// A connection pool the service manages: closed at shutdown.
#[lichtara::cleanup(order = 2, timeout = "3s")]
struct Pool {
    size: usize,
}

impl lichtara::Cleanup for Pool {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        println!("tokio_main: pool of {} closed", self.size);
        Ok(())
    }
}

#[lichtara::cleanup(order = 1, timeout = "2s")]
async fn flush_metrics() {
    println!("tokio_main: metrics flushed");
}

#[tokio::main]
async fn main() {
    lichtara::run(async {
        let _pool = lichtara::manage(Pool { size: 8 });
        let port = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
        println!("tokio_main: listening on {}", listener.local_addr()?);
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello\n" }));
        axum::serve(listener, app)
            .with_graceful_shutdown(lichtara::signalled())
            .await
    })
    .await
}
