//! Live connection counts, and the trackers the drain waits on.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

static OPEN: AtomicUsize = AtomicUsize::new(0);
static UPGRADED: AtomicUsize = AtomicUsize::new(0);

/// Upgraded sessions (WebSockets) of every server: the drain waits for them.
pub(crate) static SESSIONS: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// Cancelled when a drain passes its timeout: what is still open is cut.
pub(crate) static CUT: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);

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

/// The live connection counts of every [`Server`](crate::http::Server).
pub fn connections() -> Connections {
    Connections {
        http: OPEN.load(Ordering::Relaxed),
        upgraded: UPGRADED.load(Ordering::Relaxed),
    }
}

/// Counts one open connection for as long as it lives.
pub(crate) struct Counted(&'static AtomicUsize);

impl Counted {
    pub(crate) fn http() -> Self {
        OPEN.fetch_add(1, Ordering::Relaxed);
        Counted(&OPEN)
    }

    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn upgraded() -> Self {
        UPGRADED.fetch_add(1, Ordering::Relaxed);
        Counted(&UPGRADED)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
