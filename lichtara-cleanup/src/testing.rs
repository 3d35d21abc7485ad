//! Testing shutdown logic: run the program's hooks and managed instances
//! in-process, as many times per test binary as there are tests, and look
//! at the [`ShutdownReport`].
//!
//! Each run has a lifecycle of its own, on a thread and current-thread
//! runtime of its own: [`shutdown()`](crate::shutdown),
//! [`signalled()`](crate::signalled), [`manage`](crate::manage) and the
//! hooks `lichtara::http` and `lichtara::process` add, called from the
//! application future, the tasks it spawns or the hooks, belong to that
//! run. Runs in one binary, even concurrent ones, never see each other's
//! instances or triggers, and no signal reaches them. A `signalled()` made
//! outside the run and awaited inside it (a server built with
//! `with_graceful_shutdown(lichtara::signalled())` before the run) waits
//! for the run. With the `test-util` feature, [`Run::start_paused`] runs
//! on virtual time: deadlines and timeouts pass at once.
//!
//! When a run ends, the instances its application managed for types that
//! did not run (not selected) are dropped uncleaned.
//!
//! The registered hooks are the program's own: every run runs all of them
//! (or those [`Run::hook`] and [`Run::orders`] select), so a hook that
//! touches something global runs once per run.
//!
//! # Examples
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! static FLUSHED: AtomicBool = AtomicBool::new(false);
//!
//! #[lichtara::cleanup(order = 1, timeout = "1s", name = "flush")]
//! async fn flush() {
//!     FLUSHED.store(true, Ordering::SeqCst);
//! }
//!
//! #[tokio::test]
//! # async fn _test() {}
//! async fn flush_runs_on_shutdown() {
//!     let report = lichtara::testing::run(async {
//!         lichtara::shutdown(); // or let the future end
//!     })
//!     .await;
//!     assert_eq!(report.exit_code(), 0);
//!     lichtara::testing::assert_ran_in_order(&report, &["flush"]);
//!     assert!(FLUSHED.load(Ordering::SeqCst));
//! }
//! # fn main() {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
//! #         .block_on(flush_runs_on_shutdown());
//! # }
//! ```

use std::fmt::Write as _;
use std::future::Future;
use std::ops::{Bound, RangeBounds, RangeInclusive};
use std::sync::Arc;
use std::time::Duration;

use crate::lifecycle::{self, Lifecycle};
use crate::registry::Selection;
use crate::report::{Outcome, ShutdownReport, Trigger};
use crate::{config, drive};

/// Runs `app`, then — when it ends or calls [`shutdown()`](crate::shutdown)
/// — every registered hook and the instances it managed, in a lifecycle of
/// its own; returns the report instead of exiting. The same as
/// `Run::new().run(app)`.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::testing::run(async {}).await;
/// assert_eq!(report.trigger(), lichtara::Trigger::MainReturned);
/// # });
/// ```
pub async fn run<F>(app: F) -> ShutdownReport
where
    F: Future + Send + 'static,
    F::Output: crate::report::MainOutput,
{
    Run::new().run(app).await
}

/// A testing run with settings: which hooks, what deadline, what trigger.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::testing::Run::new()
///     .orders(1..=2)
///     .deadline(Duration::from_secs(3))
///     .trigger(lichtara::Trigger::Signal { name: "SIGTERM", number: 15 })
///     .run(async { lichtara::signalled().await })
///     .await;
/// assert_eq!(report.trigger().to_string(), "signal SIGTERM");
/// assert!(report.hooks().iter().all(|hook| (1..=2).contains(&hook.order())));
/// # });
/// ```
#[derive(Debug, Default)]
#[must_use = "a Run does nothing until `run` is awaited"]
pub struct Run {
    selection: Selection,
    deadline: Option<Duration>,
    trigger: Option<Trigger>,
    paused: bool,
}

impl Run {
    /// A run of every hook, with the default global deadline (10 s; the
    /// environment's `LICHTARA_SHUTDOWN_TIMEOUT` is not read), begun by
    /// the application.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs the registered hook of this name (repeat for more); without
    /// it, every registered hook of the selected orders runs. Hooks the
    /// application added while it ran (a child's stop, a server's drain)
    /// always run: they are the run's own.
    pub fn hook(mut self, name: impl Into<String>) -> Self {
        self.selection.names.push(name.into());
        self
    }

    /// Runs only the hooks whose `order` is in `orders`.
    pub fn orders(mut self, orders: impl RangeBounds<i32>) -> Self {
        self.selection.orders = Some(inclusive(orders));
        self
    }

    /// Sets the global deadline, counted from the trigger.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Begins shutdown at once with `trigger`, as if it had arrived as the
    /// run started: an application awaiting
    /// [`signalled()`](crate::signalled) winds down.
    pub fn trigger(mut self, trigger: Trigger) -> Self {
        self.trigger = Some(trigger);
        self
    }

    /// Runs on a paused clock: time passes only when every task waits on
    /// a timer, and then at once to the next one, so a 30 s timeout costs
    /// nothing. Needs the `test-util` feature (tokio's `test-util`).
    ///
    /// The clock is the run's own: a `tokio::time::timeout` around the
    /// run in a test that is itself paused sees none of the run's work and
    /// fires at once. And tokio does not advance a paused clock while a
    /// blocking task runs, so a sync hook's timeout is not enforced on it:
    /// test those on the real clock.
    #[cfg(feature = "test-util")]
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Runs `app` and then the sequence, on a thread and runtime of the
    /// run's own; returns the report.
    ///
    /// # Panics
    ///
    /// When the run's thread or runtime cannot be made.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future begins the run's shutdown (as `shutdown()`
    /// would): it winds down on its own thread within its deadline, cleans
    /// what it managed, and its report is dropped.
    pub async fn run<F>(self, app: F) -> ShutdownReport
    where
        F: Future + Send + 'static,
        F::Output: crate::report::MainOutput,
    {
        let (report_tx, report_rx) = tokio::sync::oneshot::channel();
        let Run {
            selection,
            deadline,
            trigger,
            paused,
        } = self;
        let lifecycle = Lifecycle::separate();
        lifecycle.claim();
        lifecycle.set_budget(deadline.unwrap_or(config::DEFAULT_TIMEOUT));
        // Dropped before its end, the run is asked to wind down: it ends
        // within its deadline instead of running on unseen.
        let mut dropped = TriggerOnDrop(Some(Arc::clone(&lifecycle)));
        let thread = std::thread::Builder::new()
            .name("lichtara-testing-run".into())
            .spawn(move || {
                let mut builder = tokio::runtime::Builder::new_current_thread();
                builder.enable_all();
                // The blocking pool's threads belong to the run too.
                let owner = Arc::clone(&lifecycle);
                builder.on_thread_start(move || lifecycle::own_thread(&owner));
                #[cfg(feature = "test-util")]
                builder.start_paused(paused);
                #[cfg(not(feature = "test-util"))]
                let _ = paused;
                let runtime = builder.build().expect("a runtime for the testing run");
                lifecycle::own_thread(&lifecycle);
                let report = runtime.block_on(async {
                    if let Some(trigger) = trigger {
                        lifecycle.trigger(trigger);
                    }
                    drive::drive(&lifecycle, app, &selection).await
                });
                crate::registry::forget_instances(&lifecycle);
                let _ = report_tx.send(report);
                // Not dropped: a hook abandoned on the blocking pool would
                // hold the drop until it returns.
                runtime.shutdown_background();
            })
            .expect("a thread for the testing run");
        let report = report_rx.await;
        dropped.0 = None;
        match report {
            Ok(report) => report,
            // The run's thread panicked: the panic is the test's.
            Err(_) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("the run ended without a report"),
            },
        }
    }
}

/// Begins a run's shutdown if its future is dropped before the report.
struct TriggerOnDrop(Option<Arc<Lifecycle>>);

impl Drop for TriggerOnDrop {
    fn drop(&mut self) {
        if let Some(lifecycle) = self.0.take() {
            lifecycle.trigger(Trigger::Requested);
        }
    }
}

fn inclusive(range: impl RangeBounds<i32>) -> RangeInclusive<i32> {
    let start = match range.start_bound() {
        Bound::Included(start) => *start,
        Bound::Excluded(start) => start.saturating_add(1),
        Bound::Unbounded => i32::MIN,
    };
    let end = match range.end_bound() {
        Bound::Included(end) => *end,
        Bound::Excluded(end) => end.saturating_sub(1),
        Bound::Unbounded => i32::MAX,
    };
    start..=end
}

/// Asserts that each hook named ran and ended `ok`, in this order (a hook
/// of a later phase after one of an earlier phase). Panics with the
/// report's table otherwise.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .hook("stop accepting", 1, None, || async {})
///     .hook("close pool", 2, None, || async {})
///     .run(async {})
///     .await;
/// lichtara::testing::assert_ran_in_order(&report, &["stop accepting", "close pool"]);
/// # });
/// ```
#[track_caller]
pub fn assert_ran_in_order(report: &ShutdownReport, names: &[&str]) {
    let mut last: Option<(usize, &str)> = None;
    for name in names {
        let (index, hook) = find(report, name);
        if *hook.outcome() != Outcome::Ok {
            fail(report, &format!("hook {name:?} ended {}", hook.outcome()));
        }
        if let Some((before, previous)) = last {
            if index <= before {
                fail(report, &format!("hook {name:?} ran before {previous:?}"));
            }
        }
        last = Some((index, name));
    }
}

/// Asserts that the hook named passed its timeout or the global deadline
/// and was abandoned.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .hook("stuck", 1, Some(Duration::from_secs(1)), || std::future::pending::<()>())
///     .run(async {})
///     .await;
/// lichtara::testing::assert_timed_out(&report, "stuck");
/// # });
/// ```
#[track_caller]
pub fn assert_timed_out(report: &ShutdownReport, name: &str) {
    let (_, hook) = find(report, name);
    if *hook.outcome() != Outcome::TimedOut {
        fail(
            report,
            &format!("hook {name:?} ended {}, not timed out", hook.outcome()),
        );
    }
}

/// Asserts that no hook was left `not run` by the global deadline.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::testing::run(async {}).await;
/// lichtara::testing::assert_nothing_not_run(&report);
/// # });
/// ```
#[track_caller]
pub fn assert_nothing_not_run(report: &ShutdownReport) {
    let not_run: Vec<&str> = report
        .hooks()
        .iter()
        .filter(|hook| *hook.outcome() == Outcome::NotRun)
        .map(|hook| hook.name())
        .collect();
    if !not_run.is_empty() {
        fail(report, &format!("hooks not run: {not_run:?}"));
    }
}

#[track_caller]
fn find<'r>(report: &'r ShutdownReport, name: &str) -> (usize, &'r crate::report::HookReport) {
    match report
        .hooks()
        .iter()
        .enumerate()
        .find(|(_, hook)| hook.name() == name)
    {
        Some(found) => found,
        None => fail(report, &format!("no hook named {name:?} in the report")),
    }
}

#[track_caller]
fn fail(report: &ShutdownReport, what: &str) -> ! {
    let mut message = String::new();
    let _ = write!(message, "{what}\n{report}");
    panic!("{message}")
}
