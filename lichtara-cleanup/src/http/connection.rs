//! One connection: what it is doing (serving a request, reading one, or
//! idle), its timers in normal running, and how the drain ends it without
//! losing a request that has reached the server.
//!
//! Three pieces share a [`Conn`]: the socket wrapper ([`Watched`]) notes
//! the bytes of a request arriving while the connection is idle; the
//! service wrapper ([`Tracked`]) notes each request from its call to the
//! end of its response body; and the server's sweeper thread
//! (`sweeper.rs`) reads both against [`deadline`] and sends the
//! connection's task ([`serve`]) a command, which the task judges again on
//! the state it finds before it acts.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
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
/// packet to be sent again. Also how long an HTTP/2 peer has to answer a
/// GOAWAY's ping before its connection is dropped.
pub(super) const DRAIN_HEAD_GRACE: Duration = Duration::from_secs(1);

/// The shortest sleep of the sweeper: a timer of zero cannot make it
/// spin.
pub(super) const SHORTEST_WAIT: Duration = Duration::from_millis(1);

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
    /// Requests whose head was received (each call of the service), added
    /// as each connection ends.
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
    pub(super) stats: Stats,
    pub(super) drains: Arc<Drains>,
    pub(super) lifecycle: Arc<Lifecycle>,
    /// Set when the listener has closed: the connections drain. (An
    /// atomic, not a token: it is read for every answer, and a token's
    /// check takes a lock that every connection would share.)
    is_draining: AtomicBool,
    /// The live connections, for the sweeper.
    connections: std::sync::Mutex<Registry>,
    /// Set when the server accepts no more connections: the sweeper ends
    /// with the last one.
    accepting_done: AtomicBool,
    /// Wakes the sweeper thread before its deadline.
    pub(super) sweeper: super::sweeper::Wakeup,
    /// Cancelled when the sweeper has ended.
    pub(super) swept: CancellationToken,
}

/// The connections of one server (some may have ended since the last
/// look).
#[derive(Debug, Default)]
struct Registry {
    list: Vec<std::sync::Weak<Conn>>,
    /// How many were alive at the last look.
    kept: usize,
}

impl Shared {
    pub(super) fn new(limits: Limits, drains: Arc<Drains>, lifecycle: Arc<Lifecycle>) -> Self {
        Shared {
            limits,
            stats: Stats::default(),
            drains,
            lifecycle,
            is_draining: AtomicBool::new(false),
            connections: std::sync::Mutex::new(Registry::default()),
            accepting_done: AtomicBool::new(false),
            sweeper: super::sweeper::Wakeup::default(),
            swept: CancellationToken::new(),
        }
    }

    pub(super) fn is_draining(&self) -> bool {
        self.is_draining.load(Ordering::Acquire)
    }

    fn register(&self, conn: &Arc<Conn>) {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connections.list.push(Arc::downgrade(conn));
        // Under churn (a connection per request), the ended ones are
        // forgotten as the list doubles, not only when the sweeper looks:
        // a `Weak` keeps its connection's memory.
        if connections.list.len() >= 2 * connections.kept + 64 {
            connections.list.retain(|conn| conn.strong_count() > 0);
            connections.kept = connections.list.len();
        }
    }

    /// The connections alive now (the ones gone are forgotten).
    pub(super) fn live(&self) -> Vec<Arc<Conn>> {
        let mut connections = self
            .connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        connections.list.retain(|conn| conn.strong_count() > 0);
        connections.kept = connections.list.len();
        connections
            .list
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect()
    }

    /// The server accepts no more connections.
    pub(super) fn accepting_done(&self) {
        self.accepting_done.store(true, Ordering::Release);
        self.sweeper.wake();
    }

    pub(super) fn is_accepting_done(&self) -> bool {
        self.accepting_done.load(Ordering::Acquire)
    }

    /// The listener has closed: every connection drains.
    pub(super) fn drain(&self) {
        self.is_draining.store(true, Ordering::Release);
        self.sweeper.wake();
    }
}

/// What a connection's first bytes say it speaks.
const UNDECIDED: u8 = 0;
const HTTP1: u8 = 1;
const HTTP2: u8 = 2;

const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

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
    /// [`UNDECIDED`] until the first bytes match or leave the HTTP/2
    /// preface; on HTTP/2 the bytes are frames, not the beginnings of
    /// requests, and GOAWAY ends the connection.
    protocol: AtomicU8,
    /// How many bytes of the HTTP/2 preface came so far (while undecided).
    preface: AtomicUsize,
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
    /// What the sweeper asks of the task ([`NOTHING`] to [`CLOSE`]).
    command: AtomicU8,
    /// Wakes the task when a command comes.
    waker: futures_util::task::AtomicWaker,
    /// When the task was told to shut the connection down (0: not yet;
    /// else the instant plus one).
    shut_at: AtomicU64,
    /// The head deadline past which the task kept the connection once,
    /// because the head's bytes were waiting unread.
    skipped: AtomicU64,
    /// When an HTTP/2 peer last sent anything: one that reads a long
    /// answer sends window updates; one that never answers a GOAWAY
    /// sends nothing.
    last_read: AtomicU64,
}

impl Conn {
    fn new(shared: Arc<Shared>, stream: &TcpStream) -> Self {
        #[cfg(not(unix))]
        let _ = stream;
        let now = now();
        Conn {
            shared,
            active: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            pending_since: AtomicU64::new(0),
            protocol: AtomicU8::new(UNDECIDED),
            preface: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            #[cfg(unix)]
            open: AtomicBool::new(true),
            #[cfg(unix)]
            fd: std::os::fd::AsRawFd::as_raw_fd(stream),
            command: AtomicU8::new(NOTHING),
            waker: futures_util::task::AtomicWaker::new(),
            shut_at: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            last_read: AtomicU64::new(now),
        }
    }

    pub(super) fn set_shut(&self) {
        let _ = self
            .shut_at
            .compare_exchange(0, now() + 1, Ordering::AcqRel, Ordering::Acquire);
    }

    /// When an HTTP/2 peer last sent anything.
    pub(super) fn last_read(&self) -> u64 {
        self.last_read.load(Ordering::Acquire)
    }

    /// When the connection was told to shut down, if it was.
    pub(super) fn shut(&self) -> Option<u64> {
        match self.shut_at.load(Ordering::Acquire) {
            0 => None,
            at => Some(at - 1),
        }
    }

    pub(super) fn is_h2(&self) -> bool {
        self.protocol.load(Ordering::Relaxed) == HTTP2
    }

    /// Bytes came in: on an idle HTTP/1 connection they begin a request.
    /// (Only the connection's own task reads its socket.)
    fn read(&self, bytes: &[u8]) {
        if bytes.is_empty() || self.upgraded.load(Ordering::Relaxed) {
            return;
        }
        match self.protocol.load(Ordering::Relaxed) {
            HTTP2 => {
                self.last_read.store(now(), Ordering::Release);
                return;
            }
            UNDECIDED => {
                let matched = self.preface.load(Ordering::Relaxed);
                let rest = &HTTP2_PREFACE[matched..];
                let n = rest.len().min(bytes.len());
                if bytes[..n] == rest[..n] {
                    if matched + n == HTTP2_PREFACE.len() {
                        self.protocol.store(HTTP2, Ordering::Relaxed);
                    } else {
                        self.preface.store(matched + n, Ordering::Relaxed);
                    }
                    return;
                }
                self.protocol.store(HTTP1, Ordering::Relaxed);
            }
            _ => {}
        }
        if self.active.load(Ordering::Acquire) > 0
            || self.pending_since.load(Ordering::Acquire) != 0
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            || bytes.iter().all(|&byte| byte == b'\r' || byte == b'\n')
        {
            return;
        }
        self.pending_since.store(now() + 1, Ordering::Release);
    }

    /// A request's head was received and its service called.
    fn begin(self: &Arc<Self>, version: http::Version) -> Active {
        if version == http::Version::HTTP_2 {
            self.protocol.store(HTTP2, Ordering::Relaxed);
        }
        self.active.fetch_add(1, Ordering::AcqRel);
        // Only the connection's task calls the service (HTTP/2 too: it
        // accepts the streams), so this needs no atomic increment.
        let served = self.served.load(Ordering::Relaxed);
        self.served.store(served + 1, Ordering::Relaxed);
        self.pending_since.store(0, Ordering::Release);
        Active {
            conn: Arc::clone(self),
            ended: AtomicBool::new(false),
        }
    }

    fn end(&self) {
        self.idle_since.store(now(), Ordering::Release);
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
    pub(super) fn state(&self) -> State {
        if self.active.load(Ordering::Acquire) > 0 {
            return State::Serving;
        }
        let idle_since = self.idle_since.load(Ordering::Acquire);
        let first = self.served.load(Ordering::Relaxed) == 0;
        match self.pending_since.load(Ordering::Acquire) {
            0 => State::Idle {
                since: idle_since,
                first,
            },
            since => State::Reading {
                since: since - 1,
                // A connection's first head is timed from its accept.
                accepted: first.then_some(idle_since),
            },
        }
    }
}

/// What a deadline is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// A head must have arrived (a connection that opened no HTTP/2
    /// stream, for HTTP/2).
    Head,
    /// An idle connection closes.
    Idle,
}

/// The deadline of a connection in `state`, and what it is for: the one
/// rule the sweeper judges by, and the connection's task checks again
/// before it acts (the state may have moved on in between).
pub(super) fn deadline(state: State, limits: &Limits, draining: bool) -> Option<(u64, Timer)> {
    let after = |since: u64, timeout: Duration| since.saturating_add(nanos(timeout));
    Some(match state {
        State::Serving => return None,
        State::Reading { since, accepted } => {
            let normal = after(accepted.unwrap_or(since), limits.header_read_timeout);
            if draining {
                // A head that began arriving gets a moment to complete (a
                // retransmission), not the whole header-read timeout.
                (
                    normal.min(after(since, limits.drain_head_grace)),
                    Timer::Head,
                )
            } else {
                (normal, Timer::Head)
            }
        }
        State::Idle { since, .. } if draining => (after(since, limits.drain_grace), Timer::Idle),
        State::Idle { since, first: true } => {
            (after(since, limits.header_read_timeout), Timer::Head)
        }
        State::Idle {
            since,
            first: false,
        } => (after(since, limits.keep_alive_timeout), Timer::Idle),
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// A request is being served.
    Serving,
    /// A head's first bytes came at `since` (see [`now`]); `accepted`: when
    /// the connection was, for its first head.
    Reading { since: u64, accepted: Option<u64> },
    /// Nothing to do since `since`; `first`: no request yet.
    Idle { since: u64, first: bool },
}

/// The monotonic clock, in nanoseconds: read per request, so it is the
/// raw clock (a vDSO call), not `Instant` arithmetic; the sweeper thread
/// compares these numbers directly.
pub(super) fn now() -> u64 {
    #[cfg(unix)]
    {
        use nix::time::{ClockId, clock_gettime};
        match clock_gettime(ClockId::CLOCK_MONOTONIC) {
            Ok(now) => (now.tv_sec() as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(now.tv_nsec() as u64),
            Err(_) => fallback_now(),
        }
    }
    #[cfg(not(unix))]
    fallback_now()
}

fn fallback_now() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// `duration` in the clock's nanoseconds.
pub(super) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// One request being served, until the last frame of its response body has
/// been handed to hyper (or the body is dropped): from then on, bytes that
/// come in begin the next request.
pub(super) struct Active {
    conn: Arc<Conn>,
    ended: AtomicBool,
}

impl Active {
    fn end(&self) {
        // One owner (the body, or the future before it) calls this, one
        // call at a time: no atomic exchange is needed.
        if !self.ended.load(Ordering::Relaxed) {
            self.ended.store(true, Ordering::Relaxed);
            self.conn.end();
        }
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.end();
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

/// Whether `request` asks for a WebSocket: an HTTP/1 `Upgrade: websocket`
/// (with `Connection: upgrade`), or an HTTP/2 extended CONNECT (RFC 8441).
/// Other upgrades (`h2c`, say) are left to the application: a server that
/// does not do them answers the request as a plain one.
fn is_websocket<B>(request: &Request<B>) -> bool {
    let tokens = |name: http::header::HeaderName, token: &'static str| {
        request
            .headers()
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(move |item| item.trim().eq_ignore_ascii_case(token))
    };
    (tokens(http::header::CONNECTION, "upgrade") && tokens(http::header::UPGRADE, "websocket"))
        || (request.method() == http::Method::CONNECT
            && request.extensions().get::<hyper::ext::Protocol>().is_some())
}

/// What a client whose upgrade was refused during the drain delay is told
/// to wait: another instance should take it meanwhile.
const RETRY_AFTER_SECS: &str = "1";

/// The answer to an upgrade once shutdown has begun: upgraded now, the
/// session would be sent close 1001 at once, so its client is sent
/// elsewhere instead.
fn refusal<B>(http1: bool) -> Response<Body<B>> {
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
    if http1 {
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    response
}

/// hyper's service, without a tower adapter: the connection's own state is
/// borrowed, and only the application's service is cloned per request.
impl<S, B> hyper::service::Service<Request<hyper::body::Incoming>> for Tracked<S>
where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<B>> + Clone,
{
    type Response = Response<Body<B>>;
    type Error = S::Error;
    type Future = Responding<S, B>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let active = self.conn.begin(request.version());
        let shared = &self.conn.shared;
        if shared.lifecycle.has_begun() && is_websocket(&request) {
            // Not handed to the application: dropped with the request, the
            // pending upgrade is dropped too, and hyper closes the
            // connection after the answer instead of upgrading it.
            shared
                .stats
                .refused_upgrades
                .fetch_add(1, Ordering::Relaxed);
            let http1 = request.version() < http::Version::HTTP_2;
            drop(request);
            drop(active);
            return Responding::Refused {
                response: Some(refusal(http1)),
            };
        }
        Responding::Ready {
            service: self.inner.clone(),
            request: Some(request),
            active: Some(active),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Tracked`]: the application's service made
    /// ready and called (as tower's `Oneshot` does), then its answer.
    #[project = RespondingProj]
    pub(super) enum Responding<S, B>
    where
        S: tower_service::Service<Request<hyper::body::Incoming>>,
    {
        Ready { service: S, request: Option<Request<hyper::body::Incoming>>, active: Option<Active> },
        Serving { #[pin] inner: S::Future, active: Option<Active> },
        Refused { response: Option<Response<Body<B>>> },
    }
}

impl<S, B> Future for Responding<S, B>
where
    S: tower_service::Service<Request<hyper::body::Incoming>, Response = Response<B>>,
{
    type Output = Result<Response<Body<B>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let (inner, active) = match self.as_mut().project() {
                RespondingProj::Ready {
                    service,
                    request,
                    active,
                } => {
                    ready!(service.poll_ready(cx))?;
                    let request = request.take().expect("polled after completion");
                    let inner = service.call(request);
                    let active = active.take();
                    self.set(Responding::Serving { inner, active });
                    continue;
                }
                RespondingProj::Serving { inner, active } => (inner, active),
                RespondingProj::Refused { response } => {
                    return Poll::Ready(Ok(response.take().expect("polled after completion")));
                }
            };
            let mut response = ready!(inner.poll(cx))?;
            let active = active.take().expect("polled after completion");
            let conn = &active.conn;
            if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
                conn.upgraded.store(true, Ordering::Release);
            } else if conn.shared.is_draining() && !conn.is_h2() {
                // Draining: a request that reached the server is answered,
                // and its client told not to send another on this
                // connection (hyper closes it after the answer).
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            return Poll::Ready(Ok(response.map(|body| Body::Served { body, active })));
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
            BodyProj::Served { mut body, active } => {
                let frame = ready!(body.as_mut().poll_frame(cx));
                if frame.is_none() || body.is_end_stream() {
                    active.end();
                }
                Poll::Ready(frame)
            }
            BodyProj::Refused => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Served { body, active } => {
                let end = body.is_end_stream();
                if end {
                    active.end();
                }
                end
            }
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
        if self.lifecycle.id() == 0 {
            tokio::spawn(future);
        } else {
            tokio::spawn(crate::lifecycle::scoped(&self.lifecycle, future));
        }
    }
}

/// What the sweeper asks of a connection's task, in increasing order of
/// force (a stronger command replaces a weaker one not yet carried out).
pub(super) const NOTHING: u8 = 0;
/// Idle too long: close, unless a request is waiting in the socket.
pub(super) const CLOSE_IF_IDLE: u8 = 1;
/// A head too slow to arrive: close, unless its bytes are waiting in the
/// socket (the server, not the client, was slow: a loaded machine).
pub(super) const CLOSE_SLOW_HEAD: u8 = 2;
/// Shut down gracefully (HTTP/1: after the answer in flight; HTTP/2:
/// GOAWAY).
pub(super) const SHUT_DOWN: u8 = 3;
/// Close now.
pub(super) const CLOSE: u8 = 4;

impl Conn {
    /// Asks the connection's task to carry out `command`.
    pub(super) fn command(&self, command: u8) {
        self.command.fetch_max(command, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The command waiting for the task, if any; registers the task to be
    /// woken by the next one (every time: a wake takes the waker).
    fn poll_command(&self, cx: &mut Context<'_>) -> Poll<u8> {
        self.waker.register(cx.waker());
        if self.command.load(Ordering::Acquire) == NOTHING {
            return Poll::Pending;
        }
        match self.command.swap(NOTHING, Ordering::AcqRel) {
            NOTHING => Poll::Pending,
            command => Poll::Ready(command),
        }
    }
}

/// Serves one connection until it ends, or until its server's sweeper
/// (which keeps the time of every connection) asks it to shut down or
/// close.
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
    // Declared first, dropped last: once the connection's state is gone,
    // a server that accepts no more may have no connection left.
    let _ended = WakeSweeperAtEnd(Arc::clone(&shared));
    let _counted = Counted::http(&shared.drains);
    let _ = stream.set_nodelay(true);
    let conn = Arc::new(Conn::new(Arc::clone(&shared), &stream));
    shared.register(&conn);
    // Adds the connection's requests to the server's count when it ends.
    let _accounted = Accounted(Arc::clone(&conn));
    let io = Watched {
        stream,
        conn: Arc::clone(&conn),
    };
    let service = Tracked {
        inner: service,
        conn: Arc::clone(&conn),
    };
    let connection =
        builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(connection);
    loop {
        let command = tokio::select! {
            biased;
            finished = connection.as_mut() => {
                if let Err(err) = finished {
                    tracing::trace!(error = %err, "connection ended with an error");
                }
                return;
            }
            command = std::future::poll_fn(|cx| conn.poll_command(cx)) => command,
        };
        match command {
            CLOSE => return,
            CLOSE_SLOW_HEAD => {
                // Judged again on the state now: the head may have come
                // since the sweeper looked.
                let due = deadline(conn.state(), &shared.limits, shared.is_draining());
                let Some((at, Timer::Head)) = due.filter(|(at, _)| *at <= now()) else {
                    continue;
                };
                // Its bytes are here, unread: the server was slow, not the
                // client (a loaded machine). Once per deadline: a client
                // that fills the socket and never reads cannot hold the
                // connection forever.
                if conn.has_unread() && conn.skipped.swap(at, Ordering::AcqRel) != at {
                    continue;
                }
                shared.stats.header_timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    timeout_ms = shared.limits.header_read_timeout.as_millis() as u64,
                    "closing a connection whose request head did not arrive in time"
                );
                return;
            }
            SHUT_DOWN => {
                conn.set_shut();
                connection.as_mut().graceful_shutdown();
            }
            _ => {
                // Judged again on the state now: a request may have begun
                // and ended since the sweeper looked.
                let due = deadline(conn.state(), &shared.limits, shared.is_draining());
                if !due.is_some_and(|(at, timer)| timer == Timer::Idle && at <= now()) {
                    continue;
                }
                if !conn.is_h2() && conn.has_unread() {
                    // A request arrived that the connection has not read
                    // yet: it is read at the next turn, under the head
                    // timer.
                    if conn.pending_since.load(Ordering::Acquire) == 0 {
                        conn.pending_since.store(now() + 1, Ordering::Release);
                    }
                    continue;
                }
                let stats = &shared.stats;
                if shared.is_draining() {
                    stats.closed_idle.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                conn.closing.store(true, Ordering::Release);
                conn.set_shut();
                // Idle: hyper closes it at once (a request that began in
                // the meantime is answered, with `Connection: close`).
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Adds a connection's requests to its server's count as it ends.
struct Accounted(Arc<Conn>);

impl Drop for Accounted {
    fn drop(&mut self) {
        let served = self.0.served.load(Ordering::Relaxed);
        self.0
            .shared
            .stats
            .received
            .fetch_add(served, Ordering::Relaxed);
    }
}

/// Wakes the sweeper as a connection ends, when its server accepts no
/// more: perhaps it was the last one, and the sweeper ends with it, not at
/// its next look.
struct WakeSweeperAtEnd(Arc<Shared>);

impl Drop for WakeSweeperAtEnd {
    fn drop(&mut self) {
        if self.0.is_accepting_done() {
            self.0.sweeper.wake();
        }
    }
}
