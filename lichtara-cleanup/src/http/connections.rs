//! Live connection counts, and the drain state every server of one
//! lifecycle shares: the WebSocket sessions the drain waits for, and the
//! cut that ends what is left at the drain timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The drain state of one lifecycle (the process's, or a testing run's).
#[derive(Debug, Default)]
pub(crate) struct Drains {
    open: AtomicUsize,
    upgraded: AtomicUsize,
    /// Upgraded sessions (WebSockets): the drain waits for them.
    pub(crate) sessions: TaskTracker,
    /// Cancelled when a drain passes its timeout: what is still open is cut.
    pub(crate) cut: CancellationToken,
}

impl Drains {
    /// The drain state of the lifecycle the caller runs in.
    pub(crate) fn current() -> Arc<Drains> {
        Arc::clone(crate::lifecycle::current().http())
    }

    pub(crate) fn counts(&self) -> Connections {
        Connections {
            http: self.open.load(Ordering::Relaxed),
            upgraded: self.upgraded.load(Ordering::Relaxed),
        }
    }
}

/// How many connections are open right now, for metrics and logs.
///
/// # Examples
///
/// ```
/// let now = lichtara::http::connections();
/// assert_eq!((now.http, now.upgraded), (0, 0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Connections {
    /// HTTP connections (idle keep-alive ones included).
    pub http: usize,
    /// Upgraded connections served as [`ws::Session`](crate::http::ws)s.
    pub upgraded: usize,
}

/// The live connection counts of every [`Server`](crate::http::Server) of
/// the running lifecycle (the process's; inside a
/// [`testing`](crate::testing) run, the run's).
pub fn connections() -> Connections {
    Drains::current().counts()
}

/// Counts one open connection for as long as it lives.
pub(crate) struct Counted {
    drains: Arc<Drains>,
    upgraded: bool,
}

impl Counted {
    pub(crate) fn http(drains: &Arc<Drains>) -> Self {
        drains.open.fetch_add(1, Ordering::Relaxed);
        Counted {
            drains: Arc::clone(drains),
            upgraded: false,
        }
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn upgraded(drains: &Arc<Drains>) -> Self {
        drains.upgraded.fetch_add(1, Ordering::Relaxed);
        Counted {
            drains: Arc::clone(drains),
            upgraded: true,
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let counter = if self.upgraded {
            &self.drains.upgraded
        } else {
            &self.drains.open
        };
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}
