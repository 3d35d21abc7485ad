//! WebSocket sessions that end cleanly at shutdown (feature `axum`).

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};

use std::sync::Arc;

use super::connections::{Counted, Drains};
use crate::lifecycle::Lifecycle;

/// An axum WebSocket that the drain waits for, and that is sent close 1001
/// (going away) when shutdown begins.
///
/// Replace `socket.recv()` with `session.recv()`: it returns `None` once
/// shutdown began and the close frame was sent.
///
/// # Examples
///
/// ```
/// use axum::extract::ws::WebSocketUpgrade;
/// use axum::response::Response;
///
/// async fn echo(upgrade: WebSocketUpgrade) -> Response {
///     upgrade.on_upgrade(|socket| async move {
///         let mut session = lichtara::http::ws::Session::new(socket);
///         while let Some(Ok(message)) = session.recv().await {
///             if session.send(message).await.is_err() {
///                 break;
///             }
///         }
///     })
/// }
/// # let _: axum::Router = axum::Router::new().route("/ws", axum::routing::get(echo));
/// ```
#[derive(Debug)]
pub struct Session {
    socket: WebSocket,
    lifecycle: Arc<Lifecycle>,
    drains: Arc<Drains>,
    _tracked: tokio_util::task::task_tracker::TaskTrackerToken,
    _counted: CountedDebug,
}

struct CountedDebug(#[allow(dead_code)] Counted);

impl std::fmt::Debug for CountedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counted")
    }
}

impl Session {
    /// Tracks `socket` until the session is dropped, in the lifecycle the
    /// caller runs in (the process's; inside a [`testing`](crate::testing)
    /// run, the run's).
    pub fn new(socket: WebSocket) -> Self {
        let lifecycle = crate::lifecycle::current();
        let drains = Arc::clone(lifecycle.http());
        Self {
            socket,
            lifecycle,
            _tracked: drains.sessions.token(),
            _counted: CountedDebug(Counted::upgraded(&drains)),
            drains,
        }
    }

    /// The next message; `None` when the peer closed, or when shutdown
    /// began (the close frame 1001 has then been sent).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe while it waits for a message, as `WebSocket::recv`: no
    /// message is lost when it is dropped in a `select!`. Dropped while it
    /// sends the close frame at shutdown, the frame may not be sent.
    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        tokio::select! {
            message = self.socket.recv() => message,
            () = self.lifecycle.begun() => {
                let frame = CloseFrame { code: close_code::AWAY, reason: "server shutting down".into() };
                let _ = self.socket.send(Message::Close(Some(frame))).await;
                None
            }
            () = self.drains.cut.cancelled() => None,
        }
    }

    /// Sends a message.
    ///
    /// # Errors
    ///
    /// When the connection is gone.
    pub async fn send(&mut self, message: Message) -> Result<(), axum::Error> {
        self.socket.send(message).await
    }

    /// The socket itself, for anything else.
    pub fn socket(&mut self) -> &mut WebSocket {
        &mut self.socket
    }
}
