//! Serving HTTP without dropping anything (feature `http`; the axum
//! helpers need feature `axum`).
//!
//! [`Server`] serves any tower or hyper service — an `axum::Router`
//! included — and joins the shutdown sequence as one hook of its own:
//!
//! 1. shutdown begins: [`readiness`] turns 503 at once; during the drain
//!    delay (0 by default, 5 s under Kubernetes) plain requests are still
//!    served, while upgrade requests (WebSockets) get `503` with
//!    `Retry-After` and `Connection: close`, so their clients go elsewhere;
//! 2. the listener closes, so the port is free; connections the kernel had
//!    already completed (waiting in the backlog) are accepted first, not
//!    reset;
//! 3. every request that reached the server is answered, with
//!    `Connection: close` (HTTP/1) or after a GOAWAY (HTTP/2) — one in
//!    flight, and one whose bytes wait in the connection's receive buffer;
//!    an idle connection may begin one more request until 250 ms after its
//!    last activity (its accept or its last answer), then closes; WebSocket
//!    [`Session`](ws::Session)s are sent close 1001 (going away);
//! 4. whatever is still open at the drain timeout is cut, logged with how
//!    many connections were cut, and the drain hook is reported `timed out`
//!    (exit code 1).
//!
//! In normal running a request head must arrive within the header-read
//! timeout (30 s) and an idle keep-alive connection closes after the
//! keep-alive timeout (75 s); accepts that fail for want of file
//! descriptors back off instead of spinning. Each lifecycle (the process's,
//! or a [`testing`](crate::testing) run's) has its own drain state.
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

mod accept;
mod connection;
mod connections;
mod readiness;
mod server;
mod sweeper;
#[cfg(feature = "axum")]
pub mod ws;

pub(crate) use connections::Drains;
pub use connections::{Connections, connections};
pub use readiness::readiness;
#[cfg(feature = "axum")]
pub use readiness::ready;
pub use server::Server;
