//! One connection: what it is doing (serving a request, reading one, or
//! idle), its timers in normal running, and how the drain ends it without
//! losing a request that has reached the server.
//!
//! Three pieces share a [`Conn`]: the socket wrapper ([`Watched`]) notes
//! the bytes of a request arriving while the connection is idle; the
//! service wrapper ([`Tracked`]) notes each request from its call to the
//! end of its response body; and the connection's task ([`serve`]) reads
//! both to choose its next deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::connections::{Counted, Drains};
use crate::error::BoxError;
use crate::lifecycle::Lifecycle;

/// How long after its last activity (its accept, or the end of its last
/// response) an idle connection may still begin a request once the drain
/// starts: a client whose request raced the drain — one that connected,
/// or read its last answer, just before — is answered with
/// `Connection: close` instead of losing its request to a closed socket,
/// while a connection idle for longer is closed at once.
pub(super) const DRAIN_GRACE: Duration = Duration::from_millis(250);

/// How long a request head that began arriving before or during the drain
/// has to complete (at most the header-read timeout): enough for a lost
/// packet to be sent again.
pub(super) const DRAIN_HEAD_GRACE: Duration = Duration::from_secs(1);

/// The timers of a server's connections.
#[derive(Clone, Copy, Debug)]
pub(super) struct Limits {
    pub(super) header_read_timeout: Duration,
    pub(super) keep_alive_timeout: Duration,
    pub(super) drain_grace: Duration,
    pub(super) drain_head_grace: Duration,
}

/// A server's own accounting, logged when its drain ends.
#[derive(Debug, Default)]
pub(super) struct Stats {
    /// Requests whose head was received (each call of the service).
    pub(super) received: AtomicU64,
    /// Idle connections the drain closed.
    pub(super) closed_idle: AtomicU64,
    /// Connections the server closed as idle that had unread bytes at the
    /// close: a request that reached the server and was never answered.
    pub(super) unread_at_close: AtomicU64,
    /// Connections closed because a request head did not arrive in time.
    pub(super) header_timeouts: AtomicU64,
    /// Idle keep-alive connections closed at the keep-alive timeout.
    pub(super) idle_timeouts: AtomicU64,
    /// Upgrade requests answered 503 because shutdown had begun.
    pub(super) refused_upgrades: AtomicU64,
}

/// What every connection of one server shares.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) limits: Limits,
    /// The origin of the connections' instants (nanoseconds since it).
    pub(super) epoch: Instant,
    pub(super) stats: Stats,
    pub(super) drains: Arc<Drains>,
    pub(super) lifecycle: Arc<Lifecycle>,
    /// Cancelled when the listener has closed: the connections drain.
    pub(super) draining: CancellationToken,
}

/// What one connection is doing, shared by its socket, its service and its
/// task.
#[derive(Debug)]
pub(super) struct Conn {
    shared: Arc<Shared>,
    /// Requests being served: from the service's call to the end of the
    /// response body.
    active: AtomicUsize,
    /// Requests begun on this connection.
    served: AtomicU64,
    /// When the connection last became idle (its accept, or the end of a
    /// response).
    idle_since: AtomicU64,
    /// When the first bytes of a request arrived on the idle connection
    /// (0: none arrived; else the instant plus one).
    pending_since: AtomicU64,
    /// The connection speaks HTTP/2 (its preface was read): its bytes are
    /// frames, not the beginnings of requests, and GOAWAY ends it.
    h2: AtomicBool,
    /// A response switched protocols: the socket belongs to the upgraded
    /// session now.
    upgraded: AtomicBool,
    /// The server is closing it as idle (keep-alive timeout or drain): the
    /// socket counts unread bytes when it closes.
    closing: AtomicBool,
    /// Whether the socket is still open (it is owned by hyper).
    #[cfg(unix)]
    open: AtomicBool,
    #[cfg(unix)]
    fd: std::os::fd::RawFd,
}

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

impl Conn {
    fn new(shared: Arc<Shared>, stream: &TcpStream) -> Self {
        #[cfg(not(unix))]
        let _ = stream;
        let now = Self::nanos_at(shared.epoch, Instant::now());
        Conn {
            shared,
            active: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            pending_since: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            #[cfg(unix)]
            open: AtomicBool::new(true),
            #[cfg(unix)]
            fd: std::os::fd::AsRawFd::as_raw_fd(stream),
        }
    }

    fn nanos_at(epoch: Instant, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    fn now(&self) -> u64 {
        Self::nanos_at(self.shared.epoch, Instant::now())
    }

    fn instant(&self, nanos: u64) -> Instant {
        self.shared.epoch + Duration::from_nanos(nanos)
    }

    /// Bytes came in: on an idle HTTP/1 connection they begin a request.
    fn read(&self, bytes: &[u8]) {
        if bytes.is_empty()
            || self.active.load(Ordering::Acquire) > 0
            || self.h2.load(Ordering::Relaxed)
            || self.upgraded.load(Ordering::Relaxed)
            || self.pending_since.load(Ordering::Acquire) != 0
        {
            return;
        }
        let head = &bytes[..bytes.len().min(HTTP2_PREFACE.len())];
        if self.served.load(Ordering::Relaxed) == 0 && HTTP2_PREFACE.starts_with(head) {
            self.h2.store(true, Ordering::Relaxed);
        } else {
            self.pending_since.store(self.now() + 1, Ordering::Release);
        }
    }

    /// A request's head was received and its service called.
    fn begin(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.served.fetch_add(1, Ordering::Relaxed);
        self.pending_since.store(0, Ordering::Release);
        Active(Arc::clone(self))
    }

    fn end(&self) {
        self.idle_since.store(self.now(), Ordering::Release);
        self.active.fetch_sub(1, Ordering::AcqRel);
    }

    /// Whether bytes wait in the socket that the connection has not read
    /// yet (a request that arrived while its task looked elsewhere).
    fn has_unread(&self) -> bool {
        #[cfg(unix)]
        {
            if !self.open.load(Ordering::Acquire) || self.upgraded.load(Ordering::Acquire) {
                return false;
            }
            let mut byte = [0u8; 1];
            use nix::sys::socket::{MsgFlags, recv};
            // The descriptor is open: the socket that owns it clears `open`
            // before it closes, and it is owned by the connection future
            // that only this connection's task polls and drops (an upgrade
            // hands it on only as that future ends, and sets `upgraded`
            // first).
            matches!(
                recv(self.fd, &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
                Ok(n) if n > 0
            )
        }
        #[cfg(not(unix))]
        false
    }

    /// What the connection is doing right now.
    fn state(&self) -> State {
        if self.active.load(Ordering::Acquire) > 0 {
            return State::Serving;
        }
        match self.pending_since.load(Ordering::Acquire) {
            0 => State::Idle {
                since: self.instant(self.idle_since.load(Ordering::Acquire)),
                first: self.served.load(Ordering::Relaxed) == 0,
            },
            since => State::Reading {
                since: self.instant(since - 1),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A request is being served.
    Serving,
    /// The first bytes of a request head arrived at `since`.
    Reading { since: Instant },
    /// Nothing to do since `since`; `first`: no request yet.
    Idle { since: Instant, first: bool },
}

/// One request being served, until its response body is dropped.
pub(super) struct Active(Arc<Conn>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// The socket of a connection, noting what comes in.
pub(super) struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.stream).poll_read(cx, buf))?;
        this.conn.read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        // Before the socket closes: a request in its receive buffer now is
        // one that reached the server and will be reset, not answered.
        if self.conn.closing.load(Ordering::Acquire)
            && !self.conn.upgraded.load(Ordering::Acquire)
            && self.conn.active.load(Ordering::Acquire) == 0
            && self.conn.has_unread()
        {
            let stats = &self.conn.shared.stats;
            stats.unread_at_close.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("closed an idle connection whose next request had just arrived");
        }
        #[cfg(unix)]
        self.conn.open.store(false, Ordering::Release);
    }
}

/// The service of one connection: notes each request, and answers upgrade
/// requests 503 once shutdown has begun.
pub(super) struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
}

impl<S: Clone> Clone for Tracked<S> {
    fn clone(&self) -> Self {
        Tracked {
            inner: self.inner.clone(),
            conn: Arc::clone(&self.conn),
        }
    }
}

/// Whether `request` asks to switch protocols (an HTTP/1 `Upgrade`, or an
/// HTTP/2 extended CONNECT such as a WebSocket over HTTP/2).
fn is_upgrade<B>(request: &Request<B>) -> bool {
    let connection_upgrade = request
        .headers()
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    (connection_upgrade && request.headers().contains_key(http::header::UPGRADE))
        || (request.method() == http::Method::CONNECT
            && request.extensions().get::<hyper::ext::Protocol>().is_some())
}

/// What a client retrying an upgrade refused during the drain delay is told
/// to wait: another instance should take it meanwhile.
const RETRY_AFTER_SECS: &str = "1";

impl<S, B> tower_service::Service<Request<hyper::body::Incoming>> for Tracked<S>
where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<B>>,
{
    type Response = Response<Body<B>>;
    type Error = S::Error;
    type Future = Responding<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let active = self.conn.begin();
        let shared = &self.conn.shared;
        shared.stats.received.fetch_add(1, Ordering::Relaxed);
        if shared.lifecycle.has_begun() && is_upgrade(&request) {
            // Upgraded now, the session would be sent close 1001 at once:
            // send the client elsewhere instead.
            shared
                .stats
                .refused_upgrades
                .fetch_add(1, Ordering::Relaxed);
            let mut response = Response::new(Body::Refused);
            *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
            let headers = response.headers_mut();
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static(RETRY_AFTER_SECS),
            );
            headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("0"),
            );
            if request.version() < http::Version::HTTP_2 {
                headers.insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            drop(active);
            return Responding::Refused {
                response: Some(response),
            };
        }
        Responding::Serving {
            inner: self.inner.call(request),
            active: Some(active),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracked`].
    #[project = RespondingProj]
    pub(super) enum Responding<F, B> {
        Serving { #[pin] inner: F, active: Option<Active> },
        Refused { response: Option<Response<Body<B>>> },
    }
}

impl<F, B, E> Future for Responding<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Body<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RespondingProj::Serving { inner, active } => {
                let mut response = ready!(inner.poll(cx))?;
                let active = active.take().expect("polled after completion");
                if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                    active.0.upgraded.store(true, Ordering::Release);
                } else if active.0.shared.draining.is_cancelled()
                    && !active.0.h2.load(Ordering::Relaxed)
                {
                    // Draining: a request that reached the server is
                    // answered, and its client told not to send another on
                    // this connection (hyper closes it after the answer).
                    response.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                Poll::Ready(Ok(response.map(|body| Body::Served { body, active })))
            }
            RespondingProj::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body: the service's, holding the request active until it
    /// is sent; or the empty body of a refusal.
    #[project = BodyProj]
    pub(super) enum Body<B> {
        Served { #[pin] body: B, active: Active },
        Refused,
    }
}

impl<B: http_body::Body> http_body::Body for Body<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        match self.project() {
            BodyProj::Served { body, .. } => body.poll_frame(cx),
            BodyProj::Refused => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Served { body, .. } => body.is_end_stream(),
            Body::Refused => true,
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            Body::Served { body, .. } => body.size_hint(),
            Body::Refused => http_body::SizeHint::with_exact(0),
        }
    }
}

/// Runs hyper's HTTP/2 streams in the server's lifecycle.
#[derive(Clone, Debug)]
pub(super) struct Executor {
    pub(super) lifecycle: Arc<Lifecycle>,
}

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(crate::lifecycle::scoped(&self.lifecycle, future));
    }
}

/// Serves one connection until it ends: in normal running, closes it when
/// a request head is too slow to arrive or when it stays idle too long; at
/// the drain, lets a request in flight finish (its response says
/// `Connection: close`, or HTTP/2 gets a GOAWAY), answers a request that
/// has reached the server, and closes the connection once it is idle.
pub(super) async fn serve<S, B>(
    stream: TcpStream,
    service: S,
    builder: hyper_util::server::conn::auto::Builder<Executor>,
    shared: Arc<Shared>,
) where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let _counted = Counted::http(&shared.drains);
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn::new(Arc::clone(&shared), &stream));
    let io = Watched {
        stream,
        conn: Arc::clone(&conn),
    };
    let service = hyper_util::service::TowerToHyperService::new(Tracked {
        inner: service,
        conn: Arc::clone(&conn),
    });
    let connection =
        builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(connection);
    let limits = shared.limits;
    let mut draining = false;
    // Once asked to shut down gracefully, the connection is only waited for.
    let mut shutting = false;
    loop {
        let deadline = if shutting {
            None
        } else if draining && conn.h2.load(Ordering::Relaxed) {
            // HTTP/2: GOAWAY; the streams it has received finish.
            connection.as_mut().graceful_shutdown();
            shutting = true;
            None
        } else {
            match conn.state() {
                // HTTP/1 in flight: hyper closes the connection after the
                // answer (which says `Connection: close`).
                State::Serving if draining => {
                    connection.as_mut().graceful_shutdown();
                    shutting = true;
                    None
                }
                // Looked at again after a keep-alive timeout: then it is
                // idle since the end of its answer, or still serving.
                State::Serving => {
                    Some((Instant::now() + limits.keep_alive_timeout, Expiry::Recheck))
                }
                // Draining, a head that began arriving gets a second to
                // complete (a retransmission), not the whole header-read
                // timeout: bytes that are not a head (the rest of a body
                // its handler did not read) must not hold the drain up.
                State::Reading { since } if draining => {
                    Some((since + limits.drain_head_grace, Expiry::Head))
                }
                State::Reading { since } => {
                    Some((since + limits.header_read_timeout, Expiry::Head))
                }
                State::Idle { since, .. } if draining => {
                    Some((since + limits.drain_grace, Expiry::Idle))
                }
                State::Idle { since, first: true } => {
                    Some((since + limits.header_read_timeout, Expiry::Head))
                }
                State::Idle {
                    since,
                    first: false,
                } => Some((since + limits.keep_alive_timeout, Expiry::Idle)),
            }
        };
        // A deadline is acted on only when it is still the one the
        // connection's state gives once it has passed: the state may have
        // changed while the task slept (a request began and ended).
        let expired = match deadline {
            Some((at, why)) if at <= Instant::now() => Some(why),
            _ => {
                tokio::select! {
                    biased;
                    finished = connection.as_mut() => {
                        if let Err(err) = finished {
                            tracing::trace!(error = %err, "connection ended with an error");
                        }
                        return;
                    }
                    () = shared.drains.cut.cancelled() => return,
                    () = shared.draining.cancelled(), if !draining => {
                        draining = true;
                        if let State::Idle { since, first } = conn.state() {
                            let until = since + limits.drain_grace;
                            let wait = until.saturating_duration_since(Instant::now());
                            tracing::debug!(
                                wait_ms = wait.as_millis() as u64,
                                "draining a connection that {}",
                                if first { "has not begun a request" } else { "is idle between requests" }
                            );
                        }
                    }
                    () = sleep_until(deadline.map(|(at, _)| at)) => {}
                }
                None
            }
        };
        match expired {
            None | Some(Expiry::Recheck) => {}
            Some(Expiry::Head) if conn.h2.load(Ordering::Relaxed) => {
                // An HTTP/2 connection that opened no stream in time.
                shared.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                connection.as_mut().graceful_shutdown();
                shutting = true;
            }
            Some(Expiry::Head) => {
                shared.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    timeout_ms = limits.header_read_timeout.as_millis() as u64,
                    "closing a connection whose request head did not arrive in time"
                );
                return;
            }
            Some(Expiry::Idle) if conn.has_unread() => {
                // A request arrived that the connection has not read yet:
                // it is read at the next turn, under the head timer.
                if conn.pending_since.load(Ordering::Acquire) == 0 {
                    conn.pending_since.store(conn.now() + 1, Ordering::Release);
                }
            }
            Some(Expiry::Idle) => {
                if draining {
                    shared.stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                } else {
                    shared.stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                conn.closing.store(true, Ordering::Release);
                // Idle: hyper closes it at once (a request that began in
                // the meantime is answered, with `Connection: close`).
                connection.as_mut().graceful_shutdown();
                shutting = true;
            }
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Expiry {
    /// A request head did not arrive in time.
    Head,
    /// Idle for the keep-alive timeout, or past the drain's grace.
    Idle,
    /// Serving at the last look: look again.
    Recheck,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
