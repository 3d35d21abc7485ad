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
use crate::BoxError;
use crate::hook::{Hook, HookKind, HookMeta, HookRunner};

/// The drain delay under Kubernetes when none is set: long enough for the
/// endpoint removal to reach the load balancers after the pod turns
/// unready.
const KUBERNETES_DRAIN_DELAY: Duration = Duration::from_secs(5);

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
    /// then closes the listener and returns; the connections still open are
    /// drained by the hook this call registers.
    ///
    /// # Errors
    ///
    /// When the listener's address cannot be read; accept errors are logged
    /// and accepting goes on.
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
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) => {
                    // Out of file descriptors and the like: the connection
                    // is lost, the server goes on.
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            let service = TowerToHyperService::new(service.clone());
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
                        // Idle: closed now. In flight: finishes, then closes.
                        connection.as_mut().graceful_shutdown();
                        tokio::select! {
                            finished = connection => finished,
                            () = CUT.cancelled() => return,
                        }
                    }
                };
                if let Err(err) = finished {
                    tracing::trace!(error = %err, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        draining.cancel();
        let open = connections();
        tracing::info!(%addr, open = open.http, upgraded = open.upgraded, "listener closed");
        Ok(())
    }
}

/// Registers the hook that waits for the server's connections.
fn register_drain(addr: SocketAddr, order: i32, timeout: Duration, tracker: TaskTracker) {
    let run = move || -> crate::hook::HookFuture {
        Box::pin(async move {
            let open = connections();
            tracing::info!(
                open = open.http,
                upgraded = open.upgraded,
                "waiting for {} connections",
                open.http + open.upgraded
            );
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
    crate::dynamic::register(Hook {
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
