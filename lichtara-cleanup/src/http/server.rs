//! [`Server`]: accept, serve, and drain within a bound.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connections::{CUT, Counted, SESSIONS, connections};
use crate::error::BoxError;
use crate::hook::{Hook, HookKind, HookMeta, HookRunner};

/// The drain delay under Kubernetes when none is set: long enough for the
/// endpoint removal to reach the load balancers after the pod turns
/// unready.
const KUBERNETES_DRAIN_DELAY: Duration = Duration::from_secs(5);

/// How long after its accept a connection that has not begun a request
/// may still begin one once the drain starts (at most the drain timeout):
/// a client whose connect raced the signal is answered, not reset, while
/// one that has been silent longer (a browser's or a load balancer's
/// preconnect) is closed at once and does not hold the drain up.
const FIRST_REQUEST_GRACE: Duration = Duration::from_millis(250);

/// An HTTP server whose drain is one hook of the shutdown sequence.
///
/// # Examples
///
/// ```no_run
/// # async fn run(app: axum::Router) -> std::io::Result<()> {
/// use std::time::Duration;
///
/// lichtara::http::Server::bind("127.0.0.1:3000")
///     .await?
///     .order(0)
///     .drain_delay(Duration::from_secs(2))
///     .drain_timeout(Duration::from_secs(10))
///     .serve(app)
///     .await
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a Server does nothing until `serve` is awaited"]
pub struct Server {
    listener: TcpListener,
    order: i32,
    drain_timeout: Duration,
    drain_delay: Option<Duration>,
}

impl Server {
    /// Binds a listener.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Ok(Self::from_listener(TcpListener::bind(addr).await?))
    }

    /// Serves on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            order: 0,
            drain_timeout: Duration::from_secs(5),
            drain_delay: None,
        }
    }

    /// The address the listener is bound to.
    ///
    /// # Errors
    ///
    /// As [`TcpListener::local_addr`].
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The phase of the drain hook (default 0): put a database pool's
    /// cleanup in a later phase so requests in flight can still use it.
    pub fn order(mut self, order: i32) -> Self {
        self.order = order;
        self
    }

    /// How long connections get to finish once the listener has closed
    /// (default 5 s); what is open after it is cut.
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// How long to keep accepting after shutdown began (default 0, or 5 s
    /// when `KUBERNETES_SERVICE_HOST` is set), while readiness already says
    /// 503.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = Some(delay);
        self
    }

    fn effective_drain_delay(&self) -> Duration {
        self.drain_delay.unwrap_or_else(|| {
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
                KUBERNETES_DRAIN_DELAY
            } else {
                Duration::ZERO
            }
        })
    }

    /// Serves `service` until shutdown begins and the drain delay passes,
    /// then accepts what waits in the backlog, closes the listener and
    /// returns; the connections still open are drained by the hook this
    /// call registers.
    ///
    /// # Errors
    ///
    /// When the listener's address cannot be read; accept errors are logged
    /// and accepting goes on.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops accepting and closes the listener; the
    /// connections already accepted run on (each is a task) and are still
    /// drained by the hook registered at the first poll.
    pub async fn serve<S, B>(self, service: S) -> io::Result<()>
    where
        S: tower_service::Service<Request<Incoming>, Response = Response<B>>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let addr = self.local_addr()?;
        let delay = self.effective_drain_delay();
        let tracker = TaskTracker::new();
        let draining = CancellationToken::new();
        register_drain(addr, self.order, self.drain_timeout, tracker.clone());
        tracing::info!(%addr, drain_delay_ms = delay.as_millis() as u64, "serving");
        let builder = auto::Builder::new(TokioExecutor::new());
        let grace = FIRST_REQUEST_GRACE.min(self.drain_timeout);
        // Serves one connection until it ends, or until the drain: then an
        // idle keep-alive connection is closed at once, a request in flight
        // finishes (answered with `Connection: close`), and a connection
        // that has not begun a request yet gets a moment to begin one.
        let spawn_connection = |stream: tokio::net::TcpStream| {
            let accepted = tokio::time::Instant::now();
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            let begun = CancellationToken::new();
            let service = TowerToHyperService::new(MarkBegun {
                inner: service.clone(),
                begun: begun.clone(),
            });
            let draining = draining.clone();
            tracker.spawn(async move {
                let _counted = Counted::http();
                let connection =
                    builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                tokio::pin!(connection);
                let finished = tokio::select! {
                    finished = connection.as_mut() => Some(finished),
                    () = draining.cancelled() => None,
                    () = CUT.cancelled() => return,
                };
                let finished = match finished {
                    Some(finished) => finished,
                    None => {
                        if !begun.is_cancelled() {
                            // Connected but silent: a client that connected
                            // just before the drain may be about to send.
                            let until = accepted + grace;
                            let wait = until.saturating_duration_since(tokio::time::Instant::now());
                            tracing::debug!(
                                wait_ms = wait.as_millis() as u64,
                                "draining a connection that has not begun a request"
                            );
                            tokio::select! {
                                finished = connection.as_mut() => return log_end(finished),
                                () = begun.cancelled() => {}
                                () = tokio::time::sleep_until(until) => {}
                                () = CUT.cancelled() => return,
                            }
                        }
                        // Idle: closed now. In flight: finishes, then closes.
                        connection.as_mut().graceful_shutdown();
                        tokio::select! {
                            finished = connection => finished,
                            () = CUT.cancelled() => return,
                        }
                    }
                };
                log_end(finished);
            });
        };
        let stop_accepting = async {
            crate::signalled().await;
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "unready; still accepting during the drain delay"
                );
                tokio::time::sleep(delay).await;
            }
        };
        tokio::pin!(stop_accepting);
        #[cfg(unix)]
        crate::systemd::ready();
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut stop_accepting => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, _peer)) => spawn_connection(stream),
                // Out of file descriptors and the like: the connection is
                // lost, the server goes on.
                Err(err) => tracing::warn!(error = %err, "accept failed"),
            }
        }
        // Connections the kernel completed before this point wait in the
        // backlog; closing the listener would reset them. Their clients
        // connected before the listener closed: accept and serve them.
        let listener = self.listener.into_std()?;
        let mut swept = 0;
        loop {
            match listener.accept() {
                Ok((stream, _peer)) => {
                    let stream = stream
                        .set_nonblocking(true)
                        .and_then(|()| tokio::net::TcpStream::from_std(stream));
                    match stream {
                        Ok(stream) => {
                            swept += 1;
                            spawn_connection(stream);
                        }
                        Err(err) => tracing::warn!(error = %err, "accept failed"),
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    break;
                }
            }
        }
        drop(listener);
        if swept > 0 {
            tracing::debug!(swept, "accepted the connections waiting in the backlog");
        }
        draining.cancel();
        let open = connections();
        tracing::info!(%addr, open = open.http, upgraded = open.upgraded, "listener closed");
        Ok(())
    }
}

fn log_end(finished: Result<(), BoxError>) {
    if let Err(err) = finished {
        tracing::trace!(error = %err, "connection ended with an error");
    }
}

/// The service of one connection, noting that a request has begun.
#[derive(Clone)]
struct MarkBegun<S> {
    inner: S,
    begun: CancellationToken,
}

impl<S, R> tower_service::Service<R> for MarkBegun<S>
where
    S: tower_service::Service<R>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.begun.cancel();
        self.inner.call(request)
    }
}

/// Registers the hook that waits for the server's connections.
fn register_drain(addr: SocketAddr, order: i32, timeout: Duration, tracker: TaskTracker) {
    let run = move || -> crate::hook::HookFuture {
        Box::pin(async move {
            let open = connections();
            if open.http + open.upgraded > 0 {
                let count = open.http + open.upgraded;
                tracing::info!(
                    open = open.http,
                    upgraded = open.upgraded,
                    "waiting for {count} connection{}",
                    if count == 1 { "" } else { "s" }
                );
            }
            // Cuts what is left if the sequencer abandons this hook at its
            // timeout.
            let mut cut_on_timeout = CutOnDrop { armed: true };
            tracker.close();
            SESSIONS.close();
            tracker.wait().await;
            SESSIONS.wait().await;
            cut_on_timeout.armed = false;
            Ok(())
        })
    };
    crate::registry::add(Hook {
        meta: HookMeta {
            name: Cow::Owned(format!("lichtara::http::drain {addr}")),
            order,
            timeout: Some(timeout),
            kind: HookKind::Builder,
            source: None,
            detail: None,
        },
        runner: HookRunner::Boxed(Box::new(run)),
    });
}

struct CutOnDrop {
    armed: bool,
}

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let open = connections();
            tracing::error!(
                cut = open.http + open.upgraded,
                http = open.http,
                upgraded = open.upgraded,
                "drain timeout: cutting the connections still open"
            );
            CUT.cancel();
        }
    }
}
