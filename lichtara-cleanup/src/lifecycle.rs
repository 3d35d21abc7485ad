//! The lifecycle: one shutdown's state — has it begun, by what, by when
//! must it end, which hooks were added while the program ran, which hook
//! is running. Every trigger goes through [`Lifecycle::trigger`], so a
//! sequence begins exactly once whatever arrives first.
//!
//! A program has one process-wide lifecycle, the one `#[lichtara::main]`,
//! [`crate::run`] and [`Shutdown::run`](crate::Shutdown::run) drive and
//! signals trigger. Each [`lichtara::testing`](crate::testing) run has its
//! own, on a thread and runtime of its own: everything that thread runs
//! (the application future, the tasks it spawns, the hooks) sees that
//! run's lifecycle, and nothing else does.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::config::DEFAULT_TIMEOUT;
use crate::hook::Hook;
use crate::report::Trigger;
use crate::sequence::Progress;

pub(crate) struct Lifecycle {
    /// Tags the resource instances made inside this lifecycle; 0 is the
    /// process-wide one.
    id: u64,
    /// Cancelled when shutdown begins.
    begun: CancellationToken,
    /// Cancelled when the hook sequence has ended.
    finished: CancellationToken,
    /// What began the shutdown, and when (on the runtime's clock: virtual
    /// in a paused test).
    trigger: OnceLock<(Trigger, Instant)>,
    /// Whether anything ever asked for [`signalled()`].
    observed: AtomicBool,
    /// The global deadline's length, in nanoseconds.
    budget_nanos: AtomicU64,
    /// How long `main` may wind down, in nanoseconds; `u64::MAX`: half the
    /// global deadline.
    main_timeout_nanos: AtomicU64,
    /// Whether a sequence has been claimed (one per lifecycle).
    claimed: AtomicBool,
    /// Whether the default log subscriber should be installed when shutdown
    /// begins (set by `#[lichtara::main]`).
    install_logging: AtomicBool,
    /// Whether the process exits when the sequence ends (`#[lichtara::main]`,
    /// `lichtara::run`): the report is then written, and the exit code
    /// known to the watchdog, before the last lines are logged.
    exits: AtomicBool,
    /// Hooks added while the program runs (a server's drain, a child's
    /// stop, the builder's): the registry merges them with the registered
    /// ones.
    added: Mutex<Vec<Hook>>,
    /// The hooks still running, for the watchdog.
    progress: Progress,
    /// The tracked tasks still running.
    tasks: crate::task::Tasks,
    /// The HTTP servers' shared drain state (connection counts, WebSocket
    /// sessions, the cut): one per lifecycle, so that one testing run's
    /// timed-out drain cannot cut another's connections.
    #[cfg(feature = "http")]
    http: OnceLock<Arc<crate::http::Drains>>,
}

/// How many lifecycles other than the process-wide one were made, and how
/// many sequences ran in all: the exit-time check warns when hooks are
/// registered and none ran.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static SEQUENCES: AtomicUsize = AtomicUsize::new(0);

static PROCESS: LazyLock<Arc<Lifecycle>> = LazyLock::new(|| Arc::new(Lifecycle::with_id(0)));

/// The process-wide lifecycle: the one signals trigger.
pub(crate) fn process() -> &'static Arc<Lifecycle> {
    &PROCESS
}

thread_local! {
    /// Set while a tracked task is polled (or runs, on the blocking pool):
    /// its `signalled()` says nothing of whether `main` can react.
    static IN_TASK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// The lifecycle being polled on this thread (a sequence's hooks, on
    /// any worker), innermost last.
    static POLLED: RefCell<Vec<Arc<Lifecycle>>> = const { RefCell::new(Vec::new()) };
    /// The testing run this thread was made for: set once, when the
    /// thread starts, and never shared with another run.
    static OWNER: RefCell<Option<Arc<Lifecycle>>> = const { RefCell::new(None) };
}

/// The lifecycle that code running now belongs to: the one being polled,
/// else the testing run this thread belongs to, else the process-wide one.
pub(crate) fn current() -> Arc<Lifecycle> {
    let polled = POLLED
        .try_with(|stack| stack.borrow().last().cloned())
        .ok()
        .flatten();
    polled
        .or_else(|| {
            OWNER
                .try_with(|owner| owner.borrow().clone())
                .ok()
                .flatten()
        })
        .unwrap_or_else(|| Arc::clone(process()))
}

/// The id of [`current`], without taking a reference to it.
pub(crate) fn current_id() -> u64 {
    let polled = POLLED
        .try_with(|stack| stack.borrow().last().map(|l| l.id))
        .ok()
        .flatten();
    polled
        .or_else(|| {
            OWNER
                .try_with(|owner| owner.borrow().as_ref().map(|l| l.id))
                .ok()
                .flatten()
        })
        .unwrap_or(0)
}

/// Makes this thread (one made for the run) belong to `lifecycle`.
pub(crate) fn own_thread(lifecycle: &Arc<Lifecycle>) {
    OWNER.with(|owner| *owner.borrow_mut() = Some(Arc::clone(lifecycle)));
}

pin_project_lite::pin_project! {
    /// A future polled as part of `lifecycle`: [`current`] names it while
    /// it runs.
    pub(crate) struct Scoped<F> {
        lifecycle: Arc<Lifecycle>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        POLLED.with(|stack| stack.borrow_mut().push(Arc::clone(this.lifecycle)));
        // Popped even if the future panics.
        struct Pop;
        impl Drop for Pop {
            fn drop(&mut self) {
                let _ = POLLED.try_with(|stack| stack.borrow_mut().pop());
            }
        }
        let _pop = Pop;
        this.inner.poll(cx)
    }
}

/// Runs `inner` as a tracked task: see `IN_TASK`.
pub(crate) fn in_task_now<T>(inner: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = IN_TASK.try_with(|flag| flag.set(self.0));
        }
    }
    let _reset = Reset(IN_TASK.with(|flag| flag.replace(true)));
    inner()
}

pin_project_lite::pin_project! {
    /// A tracked task's future: see `IN_TASK`.
    pub(crate) struct InTask<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for InTask<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let inner = self.project().inner;
        in_task_now(|| inner.poll(cx))
    }
}

pub(crate) fn in_task<F: Future>(inner: F) -> InTask<F> {
    InTask { inner }
}

/// Marks that the application can react to shutdown, unless a tracked task
/// asks (it reacts for itself, not for `main`).
fn observed_by_caller(lifecycle: &Lifecycle) {
    if !IN_TASK.try_with(std::cell::Cell::get).unwrap_or(false) {
        lifecycle.observe();
    }
}

pub(crate) fn scoped<F: Future>(lifecycle: &Arc<Lifecycle>, inner: F) -> Scoped<F> {
    Scoped {
        lifecycle: Arc::clone(lifecycle),
        inner,
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Whether any sequence ran (or is running) in this process.
pub(crate) fn any_sequence_ran() -> bool {
    SEQUENCES.load(Ordering::Acquire) > 0
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("id", &self.id)
            .field("begun", &self.has_begun())
            .finish_non_exhaustive()
    }
}

impl Lifecycle {
    fn with_id(id: u64) -> Self {
        Self {
            id,
            begun: CancellationToken::new(),
            finished: CancellationToken::new(),
            trigger: OnceLock::new(),
            observed: AtomicBool::new(false),
            budget_nanos: AtomicU64::new(nanos(DEFAULT_TIMEOUT)),
            main_timeout_nanos: AtomicU64::new(u64::MAX),
            claimed: AtomicBool::new(false),
            install_logging: AtomicBool::new(false),
            exits: AtomicBool::new(false),
            added: Mutex::new(Vec::new()),
            progress: Progress::default(),
            tasks: crate::task::Tasks::default(),
            #[cfg(feature = "http")]
            http: OnceLock::new(),
        }
    }

    /// A lifecycle of its own, for a testing run.
    pub(crate) fn separate() -> Arc<Self> {
        Arc::new(Self::with_id(NEXT_ID.fetch_add(1, Ordering::Relaxed)))
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Begins shutdown, unless it has begun already. Returns whether this
    /// call was the one that began it.
    pub(crate) fn trigger(&self, trigger: Trigger) -> bool {
        let mut first = false;
        self.trigger.get_or_init(|| {
            first = true;
            (trigger, Instant::now())
        });
        if first {
            self.install_default_logging_if_asked();
            // The watchdog before the line: a line to a full stderr nobody
            // reads blocks this thread for good, and the watchdog, which
            // writes nothing, ends the process at the deadline. The line
            // before the waiters: what they do comes after it in the log.
            if self.id == 0 {
                crate::supervisor::arm(self.deadline().into_std());
            }
            tracing::info!(
                trigger = %trigger,
                deadline_ms = self.budget().as_millis() as u64,
                "shutdown begun"
            );
            #[cfg(unix)]
            if self.id == 0 {
                crate::systemd::send("STOPPING=1");
            }
            self.begun.cancel();
        }
        first
    }

    /// Whether shutdown has begun: one atomic load (the trigger is set just
    /// before `begun` is cancelled), so that it can be asked per request.
    pub(crate) fn has_begun(&self) -> bool {
        self.trigger.get().is_some()
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

    /// Sets how long `main` may wind down; `None`: half the deadline.
    pub(crate) fn set_main_timeout(&self, timeout: Option<Duration>) {
        self.main_timeout_nanos
            .store(timeout.map_or(u64::MAX, nanos), Ordering::Release);
    }

    /// Until when `main`, in a shutdown begun at `begun`, may wind down:
    /// its timeout (half the deadline by default), never past the deadline.
    pub(crate) fn main_limit(&self, begun: Instant) -> Instant {
        let budget = self.budget();
        let timeout = match self.main_timeout_nanos.load(Ordering::Acquire) {
            u64::MAX => budget / 2,
            nanos => Duration::from_nanos(nanos).min(budget),
        };
        begun.checked_add(timeout).unwrap_or(begun)
    }

    /// Marks the process as ending with this lifecycle's sequence.
    pub(crate) fn exit_at_end(&self) {
        self.exits.store(true, Ordering::Release);
    }

    pub(crate) fn exits_at_end(&self) -> bool {
        self.exits.load(Ordering::Acquire)
    }

    pub(crate) fn enable_default_logging(&self) {
        self.install_logging.store(true, Ordering::Release);
    }

    /// Installs the default subscriber if `#[lichtara::main]` asked for it
    /// (and the application installed none): at shutdown, and at a reload.
    pub(crate) fn install_default_logging_if_asked(&self) {
        if self.install_logging.load(Ordering::Acquire) {
            crate::logging::install_default();
        }
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

    /// Claims the one shutdown sequence of this lifecycle.
    pub(crate) fn claim(&self) -> bool {
        let first = !self.claimed.swap(true, Ordering::AcqRel);
        if first {
            SEQUENCES.fetch_add(1, Ordering::AcqRel);
        }
        first
    }

    /// Whether a sequence was claimed: something will run the hooks.
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    pub(crate) fn finish(&self) {
        self.finished.cancel();
    }

    pub(crate) fn finished(&self) -> WaitForCancellationFutureOwned {
        self.finished.clone().cancelled_owned()
    }

    /// Adds a hook to this lifecycle's coming sequence.
    pub(crate) fn add(&self, hook: Hook) {
        self.added
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(hook);
    }

    /// Takes every hook added so far.
    pub(crate) fn take_added(&self) -> Vec<Hook> {
        std::mem::take(&mut *self.added.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// The tracked tasks of this lifecycle.
    pub(crate) fn tasks(&self) -> &crate::task::Tasks {
        &self.tasks
    }

    /// A token cancelled when shutdown begins.
    pub(crate) fn token(&self) -> CancellationToken {
        self.begun.child_token()
    }

    /// The HTTP drain state of this lifecycle.
    #[cfg(feature = "http")]
    pub(crate) fn http(&self) -> &Arc<crate::http::Drains> {
        self.http.get_or_init(Default::default)
    }
}

/// How long after the first wait on [`signalled()`] the process-wide
/// lifecycle must have been claimed: a service may start a worker that
/// waits before it calls [`run`](crate::run).
const CLAIM_GRACE: Duration = Duration::from_secs(3);

/// Says once, when a program uses [`signalled()`] or [`shutdown()`] but no
/// lifecycle runs: nothing will run its hooks, and no signal will reach it.
fn warn_if_nothing_runs(lifecycle: &Lifecycle, what: &'static str) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if lifecycle.id != 0 || lifecycle.is_claimed() || WARNED.swap(true, Ordering::AcqRel) {
        return;
    }
    let hooks = crate::registry::registered();
    crate::logging::warn_now(&format!(
        "lichtara::{what} is used but no lichtara lifecycle runs in this program: \
         no signal begins shutdown and the {hooks} registered cleanup hook(s) will not run; \
         use #[lichtara::main] instead of #[tokio::main], or wrap the application: \
         `lichtara::run(app).await`"
    ));
}

/// Resolves when shutdown begins. See [`signalled()`].
///
/// # Cancel safety
///
/// Dropping it has no effect on the shutdown.
#[must_use = "futures do nothing unless polled"]
pub struct Signalled {
    lifecycle: Arc<Lifecycle>,
    inner: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Whether it was polled yet.
    polled: bool,
}

impl std::fmt::Debug for Signalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signalled")
            .field("begun", &self.lifecycle.has_begun())
            .finish()
    }
}

impl Future for Signalled {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.polled {
            self.polled = true;
            // Built outside a testing run and handed to it (a server's
            // `with_graceful_shutdown(lichtara::signalled())` built before
            // `testing::run`): it waits for the run it is polled in.
            let now = current();
            if self.lifecycle.id == 0 && now.id != 0 {
                observed_by_caller(&now);
                self.inner = Box::pin(now.begun());
                self.lifecycle = now;
            }
        }
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_pending() && self.lifecycle.id == 0 && !self.lifecycle.is_claimed() {
            // Not at once: a worker may wait before `run` claims the
            // sequence.
            let lifecycle = Arc::clone(&self.lifecycle);
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    static SCHEDULED: AtomicBool = AtomicBool::new(false);
                    if !SCHEDULED.swap(true, Ordering::AcqRel) {
                        runtime.spawn(async move {
                            tokio::time::sleep(CLAIM_GRACE).await;
                            warn_if_nothing_runs(&lifecycle, "signalled()");
                        });
                    }
                }
                Err(_) => warn_if_nothing_runs(&lifecycle, "signalled()"),
            }
        }
        poll
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
/// Awaited in a program where no lifecycle runs (`#[tokio::main]` without
/// [`run`](crate::run)), it logs a warning once: there, no signal would
/// ever resolve it.
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
    let lifecycle = current();
    observed_by_caller(&lifecycle);
    let inner = Box::pin(lifecycle.begun());
    Signalled {
        lifecycle,
        inner,
        polled: false,
    }
}

/// A [`CancellationToken`] cancelled when shutdown begins, for code that
/// takes one (a tracked task's loop, a library's shutdown parameter).
/// Cancelling it cancels only this token, not the shutdown: that is
/// [`shutdown()`].
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         let token = lichtara::token();
///         lichtara::spawn("poller", async move {
///             token.cancelled().await;
///         })?;
///         lichtara::shutdown();
///         Ok::<(), lichtara::SpawnError>(())
///     })
///     .await;
/// assert!(report.tasks()[0].outcome().is_success());
/// # });
/// ```
#[must_use]
pub fn token() -> CancellationToken {
    let lifecycle = current();
    observed_by_caller(&lifecycle);
    lifecycle.token()
}

/// Begins shutdown from code, the same way a SIGTERM would. Calling it again,
/// or after shutdown began, does nothing. In a program where no lifecycle
/// runs, it logs a warning once: nothing would run the hooks.
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
    let lifecycle = current();
    warn_if_nothing_runs(&lifecycle, "shutdown()");
    lifecycle.trigger(Trigger::Requested);
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
    current().has_begun()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simultaneous_triggers_begin_shutdown_once() {
        let lifecycle = Lifecycle::separate();
        assert!(!lifecycle.has_begun());
        let barrier = std::sync::Barrier::new(8);
        let firsts = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let (barrier, lifecycle) = (&barrier, &lifecycle);
                    scope.spawn(move || {
                        barrier.wait();
                        let trigger = if n % 2 == 0 {
                            Trigger::Requested
                        } else {
                            Trigger::MainReturned
                        };
                        lifecycle.trigger(trigger)
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
        assert!(lifecycle.has_begun());
        let (trigger, _) = lifecycle.triggered().expect("a trigger was recorded");
        assert!(matches!(
            trigger,
            Trigger::Requested | Trigger::MainReturned
        ));
        assert!(!lifecycle.trigger(Trigger::MainPanicked));
        // Another lifecycle, and the process-wide one, are untouched.
        assert!(!Lifecycle::separate().has_begun());
        assert!(!process().has_begun());
    }

    #[tokio::test(start_paused = true)]
    async fn code_polled_inside_a_run_sees_its_lifecycle_and_outside_the_process_one() {
        let run = Lifecycle::separate();
        let inside = scoped(&run, async { current().id() }).await;
        assert_eq!(inside, run.id());
        assert_eq!(current().id(), 0);
        // Nested runs: the innermost wins, and the outer is back after.
        let other = Lifecycle::separate();
        let (outer_id, inner_id) = (run.id(), other.id());
        let seen = scoped(&run, async move {
            let inner = scoped(&other, async { current().id() }).await;
            (inner, current().id())
        })
        .await;
        assert_eq!(seen, (inner_id, outer_id));
        // A trigger inside reaches only the run's lifecycle.
        scoped(&run, async { shutdown() }).await;
        assert!(run.has_begun());
        assert!(!process().has_begun());
    }

    #[test]
    fn a_thread_made_for_a_run_sees_it_and_others_do_not() {
        let run = Lifecycle::separate();
        let id = run.id();
        let seen = std::thread::spawn(move || {
            own_thread(&run);
            (current().id(), current_id())
        })
        .join()
        .expect("thread");
        assert_eq!(seen, (id, id));
        assert_eq!(current_id(), 0);
    }
}
