//! [`Server`]: accept, serve, and drain within a bound.

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, ToSocketAddrs};
use tokio_util::task::TaskTracker;

use super::accept::Backoff;
use super::connection::{self, DRAIN_GRACE, DRAIN_HEAD_GRACE, Executor, Limits, Shared};
use super::connections::Drains;
use super::sweeper;
use crate::error::BoxError;
use crate::hook::{Hook, HookKind, HookMeta, HookRunner};
use crate::lifecycle::Lifecycle;

/// The drain delay under Kubernetes when none is set: long enough for the
/// endpoint removal to reach the load balancers after the pod turns
/// unready.
const KUBERNETES_DRAIN_DELAY: Duration = Duration::from_secs(5);

/// The default bound on the wait for a request head (from its first byte,
/// or from the accept for a connection's first request): the common
/// servers' default.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The default bound on an idle keep-alive connection: longer than the
/// 60 s idle timeout of the common load balancers, so that the balancer,
/// not the server, closes a connection it may be about to reuse.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);

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
    header_read_timeout: Duration,
    keep_alive_timeout: Duration,
}

impl Server {
    /// A listener for `addr`: on Unix, the one this process inherited for
    /// that address by socket activation (see [`listen`](crate::listen):
    /// `lichtara start --listen`, a systemd `.socket` unit), else a new one
    /// bound here. A service written with `bind` can so be reloaded by
    /// `lichtara reload` without a change.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        #[cfg(unix)]
        let listener = crate::listen::tcp(addr).await?;
        #[cfg(not(unix))]
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::from_listener(listener))
    }

    /// Serves on the listener this process inherited under `name`
    /// (`LISTEN_FDNAMES`; `--listen http=127.0.0.1:8000` names it `http`).
    ///
    /// # Errors
    ///
    /// `NotFound` when no listener of that name was inherited (or it was
    /// taken already), `InvalidInput` when it is not a TCP listener.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Started without socket activation: nothing to inherit.
    /// let err = lichtara::http::Server::inherit("http").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// # }
    /// ```
    #[cfg(unix)]
    pub fn inherit(name: &str) -> io::Result<Self> {
        match crate::listen::take_tcp(name)? {
            Some(listener) => Ok(Self::from_listener(TcpListener::from_std(listener)?)),
            None => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no listener named `{name}` was inherited{}",
                    crate::listen::problem().map_or_else(String::new, |why| format!(" ({why})"))
                ),
            )),
        }
    }

    /// Serves on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            order: 0,
            drain_timeout: Duration::from_secs(5),
            drain_delay: None,
            header_read_timeout: HEADER_READ_TIMEOUT,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
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

    /// How long a client has to send a whole request head (default 30 s):
    /// from the accept for a connection's first request, from the head's
    /// first byte for the next ones (at least 1 ms). A client slower than
    /// that (one that sends a byte a second, holding a connection and a
    /// task) is disconnected.
    ///
    /// ```
    /// # async fn run() -> std::io::Result<()> {
    /// let server = lichtara::http::Server::bind("127.0.0.1:0")
    ///     .await?
    ///     .header_read_timeout(std::time::Duration::from_secs(10));
    /// # let _ = server; Ok(()) }
    /// ```
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long a keep-alive connection may stay idle between two requests
    /// (default 75 s, longer than the usual load balancer's 60 s, so the
    /// balancer closes first). An HTTP/2 connection with no stream open for
    /// that long gets a GOAWAY. Zero turns HTTP/1 keep-alive off: each
    /// connection closes after its answer.
    ///
    /// ```
    /// # async fn run() -> std::io::Result<()> {
    /// let server = lichtara::http::Server::bind("127.0.0.1:0")
    ///     .await?
    ///     .keep_alive_timeout(std::time::Duration::from_secs(120));
    /// # let _ = server; Ok(()) }
    /// ```
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
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
    /// During the drain delay, plain requests are served while requests to
    /// upgrade (WebSockets) are answered `503` with `Retry-After` and
    /// `Connection: close`: upgraded, they would be closed at once.
    ///
    /// # Errors
    ///
    /// When the listener's address cannot be read. Accept errors are not
    /// returned: one that concerns a single connection is retried at once;
    /// one for want of file descriptors or memory is logged once per
    /// episode and retried after a growing pause (up to 1 s), while the
    /// connections already open are served and drained as usual.
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
        let lifecycle = crate::lifecycle::current();
        let tracker = TaskTracker::new();
        let shared = Arc::new(Shared::new(
            Limits {
                header_read_timeout: self.header_read_timeout,
                keep_alive_timeout: self.keep_alive_timeout,
                drain_grace: DRAIN_GRACE.min(self.drain_timeout),
                drain_head_grace: DRAIN_HEAD_GRACE
                    .min(self.header_read_timeout)
                    .min(self.drain_timeout),
            },
            Arc::clone(lifecycle.http()),
            Arc::clone(&lifecycle),
        ));
        register_drain(
            &lifecycle,
            addr,
            self.order,
            self.drain_timeout,
            tracker.clone(),
            Arc::clone(&shared),
        );
        tracing::info!(%addr, drain_delay_ms = delay.as_millis() as u64, "serving");
        let mut builder = auto::Builder::new(Executor {
            lifecycle: Arc::clone(&lifecycle),
        });
        // For WebSockets over HTTP/2 (RFC 8441).
        builder.http2().enable_connect_protocol();
        if self.keep_alive_timeout.is_zero() {
            builder.http1().keep_alive(false);
        }
        // The process's lifecycle is the one every task sees unless told
        // otherwise: only a testing run's needs scoping.
        let scoped = lifecycle.id() != 0;
        let spawn_connection = |stream: tokio::net::TcpStream| {
            let connection = connection::serve(
                stream,
                service.clone(),
                builder.clone(),
                Arc::clone(&shared),
            );
            if scoped {
                tracker.spawn(crate::lifecycle::scoped(&lifecycle, connection));
            } else {
                tracker.spawn(connection);
            }
        };
        sweeper::start(&shared);
        // However `serve` ends (returned, or dropped), no connection comes
        // after: the sweeper ends with the last one.
        let _accepting = AcceptingDone(Arc::clone(&shared));
        let stop_accepting = async {
            crate::signalled().await;
            if !delay.is_zero() {
                tracing::info!(
                    delay_ms = delay.as_millis() as u64,
                    "unready; still accepting during the drain delay (upgrades are refused)"
                );
                tokio::time::sleep(delay).await;
            }
        };
        tokio::pin!(stop_accepting);
        #[cfg(unix)]
        crate::systemd::ready();
        let mut backoff = Backoff::default();
        loop {
            let accepted = tokio::select! {
                biased;
                () = &mut stop_accepting => break,
                accepted = accept(&self.listener, backoff.pause()) => accepted,
            };
            match accepted {
                Ok(stream) => {
                    backoff.accepted();
                    spawn_connection(stream);
                }
                Err(err) => {
                    backoff.failed(&err);
                }
            }
        }
        // The connections open now drain; those the kernel completed
        // before this point wait in the backlog, and closing the listener
        // would reset them: their clients connected before it closed, so
        // they are accepted and drained too.
        shared.drain();
        let listener = self.listener.into_std()?;
        let mut swept = 0;
        let sweep_began = tokio::time::Instant::now();
        loop {
            match listener.accept() {
                Ok((stream, _peer)) => {
                    backoff.accepted();
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
                Err(err) => {
                    // Out of descriptors: the draining connections free
                    // some as they close. Waited for within the drain's
                    // timeout, then what is left in the backlog is reset.
                    if let Some(pause) = backoff.failed(&err) {
                        if sweep_began.elapsed() >= self.drain_timeout {
                            tracing::warn!(
                                error = %err,
                                "cannot accept the connections left in the backlog; they are reset"
                            );
                            break;
                        }
                        tokio::time::sleep(pause).await;
                    }
                }
            }
        }
        drop(listener);
        if swept > 0 {
            tracing::debug!(swept, "accepted the connections waiting in the backlog");
        }
        let open = shared.drains.counts();
        tracing::info!(%addr, open = open.http, upgraded = open.upgraded, "listener closed");
        Ok(())
    }
}

/// Tells the sweeper that no connection comes after this point.
struct AcceptingDone(Arc<Shared>);

impl Drop for AcceptingDone {
    fn drop(&mut self) {
        self.0.accepting_done();
    }
}

/// Accepts one connection, after `pause` if accepts have been failing.
async fn accept(
    listener: &TcpListener,
    pause: Option<Duration>,
) -> io::Result<tokio::net::TcpStream> {
    if let Some(pause) = pause {
        tokio::time::sleep(pause).await;
    }
    listener.accept().await.map(|(stream, _peer)| stream)
}

/// Registers the hook that waits for the server's connections, and says
/// what the drain did.
fn register_drain(
    lifecycle: &Lifecycle,
    addr: SocketAddr,
    order: i32,
    timeout: Duration,
    tracker: TaskTracker,
    shared: Arc<Shared>,
) {
    let run = move || -> crate::hook::HookFuture {
        crate::hook::HookFuture::new(async move {
            let drains = &shared.drains;
            let open = drains.counts();
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
            let mut cut_on_timeout = CutOnDrop {
                drains: Arc::clone(drains),
                armed: true,
            };
            tracker.close();
            drains.sessions.close();
            tracker.wait().await;
            drains.sessions.wait().await;
            cut_on_timeout.armed = false;
            let stats = &shared.stats;
            let count = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
            tracing::info!(
                %addr,
                requests = count(&stats.received),
                closed_idle = count(&stats.closed_idle),
                unread_at_close = count(&stats.unread_at_close),
                refused_upgrades = count(&stats.refused_upgrades),
                header_timeouts = count(&stats.header_timeouts),
                idle_timeouts = count(&stats.idle_timeouts),
                "drained"
            );
            Ok(())
        })
    };
    lifecycle.add(Hook {
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
    drains: Arc<Drains>,
    armed: bool,
}

impl Drop for CutOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let open = self.drains.counts();
            tracing::error!(
                cut = open.http + open.upgraded,
                http = open.http,
                upgraded = open.upgraded,
                "drain timeout: cutting the connections still open"
            );
            self.drains.cut.cancel();
        }
    }
}
