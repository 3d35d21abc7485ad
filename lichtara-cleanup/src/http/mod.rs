//! Serving HTTP without dropping anything (feature `http`; the axum
//! helpers need feature `axum`).
//!
//! [`Server`] serves any tower or hyper service — an `axum::Router`
//! included — and joins the shutdown sequence as one hook of its own:
//!
//! 1. shutdown begins: [`readiness`] turns 503 at once;
//! 2. after the drain delay (0 by default, 5 s under Kubernetes) the
//!    listener closes, so the port is free; connections the kernel had
//!    already completed (waiting in the backlog) are accepted first, not
//!    reset;
//! 3. idle keep-alive connections close at once; a connection that has not
//!    sent its first request may begin one until 250 ms after its accept
//!    (its client may have connected just before the signal; one silent
//!    for longer closes at once); requests in flight finish,
//!    their responses carrying `Connection: close` (HTTP/1) or after a
//!    GOAWAY (HTTP/2); WebSocket [`Session`](ws::Session)s are sent close
//!    1001 (going away);
//! 4. whatever is still open at the drain timeout is cut, logged with how
//!    many connections were cut, and the drain hook is reported `timed out`
//!    (exit code 1).
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! #[lichtara::main]
//! async fn main() -> std::io::Result<()> {
//!     use std::time::Duration;
//!     let app = axum::Router::new()
//!         .route("/", axum::routing::get(|| async { "hello" }))
//!         .route("/ready", axum::routing::get(lichtara::http::ready));
//!     lichtara::http::Server::bind("127.0.0.1:3000")
//!         .await?
//!         .drain_timeout(Duration::from_secs(5))
//!         .serve(app)
//!         .await
//! }
//! # #[cfg(not(feature = "axum"))]
//! # fn main() {}
//! ```

mod connections;
mod readiness;
mod server;
#[cfg(feature = "axum")]
pub mod ws;

pub use connections::{Connections, connections};
pub use readiness::readiness;
#[cfg(feature = "axum")]
pub use readiness::ready;
pub use server::Server;
