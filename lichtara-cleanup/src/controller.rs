//! The process-wide shutdown state: has it begun, by what, and by when must
//! it end. Every trigger goes through [`Controller::trigger`], so the
//! sequence begins exactly once whatever arrives first.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::Trigger;
use crate::config::DEFAULT_TIMEOUT;

pub(crate) struct Controller {
    /// Cancelled when shutdown begins.
    begun: CancellationToken,
    /// Cancelled when the hook sequence has ended.
    finished: CancellationToken,
    /// What began the shutdown, and when.
    trigger: OnceLock<(Trigger, Instant)>,
    /// Whether anything ever asked for [`signalled()`].
    observed: AtomicBool,
    /// The global deadline's length, in nanoseconds.
    budget_nanos: AtomicU64,
    /// Whether a sequence has been claimed (one per process).
    claimed: AtomicBool,
    /// Whether the default log subscriber should be installed when shutdown
    /// begins (set by `#[lichtara::main]`).
    install_logging: AtomicBool,
}

static CONTROLLER: LazyLock<Controller> = LazyLock::new(|| Controller {
    begun: CancellationToken::new(),
    finished: CancellationToken::new(),
    trigger: OnceLock::new(),
    observed: AtomicBool::new(false),
    budget_nanos: AtomicU64::new(nanos(DEFAULT_TIMEOUT)),
    claimed: AtomicBool::new(false),
    install_logging: AtomicBool::new(false),
});

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) fn controller() -> &'static Controller {
    &CONTROLLER
}

impl Controller {
    /// Begins shutdown, unless it has begun already. Returns whether this
    /// call was the one that began it.
    pub(crate) fn trigger(&self, trigger: Trigger) -> bool {
        let mut first = false;
        self.trigger.get_or_init(|| {
            first = true;
            (trigger, Instant::now())
        });
        if first {
            if self.install_logging.load(Ordering::Acquire) {
                crate::logging::install_default();
            }
            // Instances alive now are cleaned even if `main` drops its
            // handles while it winds down.
            crate::registry::plan().pin_resources();
            tracing::info!(
                trigger = %trigger,
                deadline_ms = self.budget().as_millis() as u64,
                "shutdown begun"
            );
            #[cfg(unix)]
            crate::systemd::send("STOPPING=1");
            self.begun.cancel();
        }
        first
    }

    pub(crate) fn has_begun(&self) -> bool {
        self.begun.is_cancelled()
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn begun(&self) -> WaitForCancellationFutureOwned {
        self.begun.clone().cancelled_owned()
    }

    /// Marks that the application can react to shutdown.
    pub(crate) fn observe(&self) {
        self.observed.store(true, Ordering::Release);
    }

    pub(crate) fn observed(&self) -> bool {
        self.observed.load(Ordering::Acquire)
    }

    pub(crate) fn set_budget(&self, budget: Duration) {
        self.budget_nanos.store(nanos(budget), Ordering::Release);
    }

    pub(crate) fn budget(&self) -> Duration {
        Duration::from_nanos(self.budget_nanos.load(Ordering::Acquire))
    }

    pub(crate) fn enable_default_logging(&self) {
        self.install_logging.store(true, Ordering::Release);
    }

    /// What began the shutdown and when; `None` before it began.
    pub(crate) fn triggered(&self) -> Option<(Trigger, Instant)> {
        self.trigger.get().copied()
    }

    /// When the global deadline passes. Before shutdown began: one budget
    /// from now.
    pub(crate) fn deadline(&self) -> Instant {
        let start = self.triggered().map_or_else(Instant::now, |(_, at)| at);
        start + self.budget()
    }

    /// Claims the one shutdown sequence of this process.
    pub(crate) fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    pub(crate) fn finish(&self) {
        self.finished.cancel();
    }

    pub(crate) fn finished(&self) -> WaitForCancellationFutureOwned {
        self.finished.clone().cancelled_owned()
    }
}

/// Resolves when shutdown begins. See [`signalled()`].
///
/// # Cancel safety
///
/// Dropping it has no effect on the shutdown.
#[must_use = "futures do nothing unless polled"]
pub struct Signalled {
    inner: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl std::fmt::Debug for Signalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signalled")
            .field("begun", &controller().has_begun())
            .finish()
    }
}

impl Future for Signalled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.as_mut().poll(cx)
    }
}

/// A future that resolves when shutdown begins — by a signal, by `main`
/// returning or panicking, or by [`shutdown()`].
///
/// Hand it to anything that winds down gracefully, such as
/// `axum::serve(..).with_graceful_shutdown(lichtara::signalled())`. Calling
/// it tells the runtime that `main` can react to shutdown: `main` is then
/// awaited until it returns (within the global deadline) before the hooks
/// run. A `main` that never called it is dropped at once when shutdown
/// begins.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         let serve = async {
///             lichtara::signalled().await;
///             "drained"
///         };
///         lichtara::shutdown();
///         assert_eq!(serve.await, "drained");
///     })
///     .await;
/// assert_eq!(report.exit_code(), 0);
/// # });
/// ```
pub fn signalled() -> Signalled {
    let controller = controller();
    controller.observe();
    Signalled {
        inner: Box::pin(controller.begun()),
    }
}

/// Begins shutdown from code, the same way a SIGTERM would. Calling it again,
/// or after shutdown began, does nothing.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         lichtara::shutdown();
///         lichtara::signalled().await;
///     })
///     .await;
/// assert_eq!(report.trigger(), lichtara::Trigger::Requested);
/// # });
/// ```
pub fn shutdown() {
    controller().trigger(Trigger::Requested);
}

/// Whether shutdown has begun. Cheap: a loop can ask it on every turn.
///
/// # Examples
///
/// ```
/// assert!(!lichtara::is_shutting_down());
/// ```
#[must_use]
pub fn is_shutting_down() -> bool {
    controller().has_begun()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The only test of this binary that touches the process-wide
    /// controller: many triggers at once begin exactly one shutdown.
    #[test]
    fn simultaneous_triggers_begin_shutdown_once() {
        let controller = controller();
        assert!(!controller.has_begun());
        let barrier = std::sync::Barrier::new(8);
        let firsts = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        let trigger = if n % 2 == 0 {
                            Trigger::Requested
                        } else {
                            Trigger::MainReturned
                        };
                        controller.trigger(trigger)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("trigger thread"))
                .filter(|first| *first)
                .count()
        });
        assert_eq!(firsts, 1);
        assert!(controller.has_begun());
        assert!(is_shutting_down());
        let (trigger, _) = controller.triggered().expect("a trigger was recorded");
        assert!(matches!(
            trigger,
            Trigger::Requested | Trigger::MainReturned
        ));
        assert!(!controller.trigger(Trigger::MainPanicked));
    }
}
