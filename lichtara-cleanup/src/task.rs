//! Tracked tasks: background work the shutdown knows about. A task
//! spawned with [`spawn`] (or [`spawn_blocking`], or a [`Task`] with a
//! policy) is awaited in the wind-down beside `main`, for at most half the
//! global deadline (or [`Shutdown::tasks_timeout`](crate::Shutdown::tasks_timeout)),
//! so that a stuck task leaves the hooks their time; the report names it
//! with its outcome. One that fails (an `Err`, a panic) begins the shutdown unless
//! its policy says to log only; one spawned once shutdown has begun is
//! refused.
//!
//! The lifecycle keeps only the tasks still running: one that ends before
//! shutdown leaves the list (its failure logged then), so a service that
//! spawns a task per job holds no record of the jobs done.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::hook::IntoHookResult;
use crate::lifecycle::{Lifecycle, scoped};
use crate::report::{Outcome, TaskReport, Trigger, outcome_of};
use crate::unwind::CatchUnwind;

/// What a tracked task's failure (an `Err` or a panic, before shutdown
/// began) does.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # lichtara::Shutdown::new().run(async {
/// lichtara::Task::new("cache-warmer")
///     .on_failure(lichtara::OnFailure::Log)
///     .spawn(async { Err::<(), _>(std::io::Error::other("cold")) })?;
/// # Ok::<(), lichtara::SpawnError>(())
/// # }).await;
/// # });
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnFailure {
    /// Begin the shutdown, naming the task as its trigger (the default): a
    /// queue consumer that died leaves a service that only looks alive.
    #[default]
    Shutdown,
    /// Log the failure and go on.
    Log,
}

/// Why a task was not spawned.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         lichtara::shutdown();
///         let refused = lichtara::spawn("late", async {}).unwrap_err();
///         assert!(matches!(refused, lichtara::SpawnError::ShuttingDown { .. }));
///     })
///     .await;
/// # assert_eq!(report.exit_code(), 0);
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    /// Shutdown has begun: the task would not be awaited.
    #[error("task {name:?} not spawned: shutdown has begun")]
    ShuttingDown {
        /// The task's name.
        name: String,
    },
    /// Called outside a tokio runtime.
    #[error("task {name:?} not spawned: no tokio runtime is running here")]
    NoRuntime {
        /// The task's name.
        name: String,
    },
}

/// A tracked task to spawn, with its policy.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         lichtara::Task::new("flusher").spawn(async {
///             lichtara::signalled().await;
///             // flush what is buffered
///         })?;
///         lichtara::shutdown();
///         Ok::<(), lichtara::SpawnError>(())
///     })
///     .await;
/// assert_eq!(report.tasks()[0].name(), "flusher");
/// # });
/// ```
#[derive(Debug)]
#[must_use = "a Task does nothing until spawned"]
pub struct Task {
    name: Cow<'static, str>,
    on_failure: OnFailure,
}

impl Task {
    /// A task named `name` (for the log and the report), with the default
    /// policy: a failure begins the shutdown.
    pub fn new(name: impl Into<Cow<'static, str>>) -> Self {
        Self {
            name: name.into(),
            on_failure: OnFailure::Shutdown,
        }
    }

    /// Sets what a failure before shutdown does.
    pub fn on_failure(mut self, policy: OnFailure) -> Self {
        self.on_failure = policy;
        self
    }

    /// Spawns `future` on the current tokio runtime as part of the running
    /// lifecycle. It may return `()` or `Result<(), E>`.
    pub fn spawn<F>(self, future: F) -> Result<TaskHandle, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: IntoHookResult,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(SpawnError::NoRuntime {
                name: self.name.into_owned(),
            });
        };
        let lifecycle = crate::lifecycle::current();
        // The error's message is made inside the catch too: a `Display`
        // that panics is the task's panic, not a lost task.
        let body = scoped(
            &lifecycle,
            crate::lifecycle::in_task(async move {
                CatchUnwind::new(async move { outcome_of(Ok(future.await.into_hook_result())) })
                    .await
                    .unwrap_or_else(|payload| outcome_of(Err(payload)))
            }),
        );
        lifecycle
            .tasks()
            .start(&lifecycle, self, |ending| runtime.spawn(ending.after(body)))
    }

    /// Spawns `f` on the blocking pool as part of the running lifecycle. At
    /// its timeout it is abandoned (a thread cannot be stopped), and the
    /// process's exit ends it.
    pub fn spawn_blocking<F, R>(self, f: F) -> Result<TaskHandle, SpawnError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: IntoHookResult,
    {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(SpawnError::NoRuntime {
                name: self.name.into_owned(),
            });
        };
        let lifecycle = crate::lifecycle::current();
        let run = move || {
            crate::lifecycle::in_task_now(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    outcome_of(Ok(f().into_hook_result()))
                }))
                .unwrap_or_else(|payload| outcome_of(Err(payload)))
            })
        };
        let pool = runtime.clone();
        // The end is told from an async task that awaits the thread: the
        // wind-down can stop waiting for it, if not stop it; abandoned
        // before a thread took it, it never runs.
        let body = async move {
            let handle = pool.spawn_blocking(run);
            let _unqueue = AbortOnDrop(handle.abort_handle());
            handle
                .await
                .unwrap_or_else(|err| Outcome::Error(format!("the task was lost: {err}")))
        };
        lifecycle
            .tasks()
            .start(&lifecycle, self, |ending| runtime.spawn(ending.after(body)))
    }
}

/// Spawns a tracked task with the default policy (a failure begins the
/// shutdown): [`Task::spawn`].
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         lichtara::spawn("consumer", async {
///             lichtara::signalled().await;
///             Ok::<(), std::io::Error>(())
///         })?;
///         lichtara::shutdown();
///         Ok::<(), lichtara::SpawnError>(())
///     })
///     .await;
/// assert!(report.tasks()[0].outcome().is_success());
/// # });
/// ```
pub fn spawn<F>(name: impl Into<Cow<'static, str>>, future: F) -> Result<TaskHandle, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: IntoHookResult,
{
    Task::new(name).spawn(future)
}

/// Spawns a tracked task on the blocking pool with the default policy:
/// [`Task::spawn_blocking`].
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         lichtara::spawn_blocking("compactor", || {
///             // blocking work, in steps that check lichtara::is_shutting_down()
///         })?;
///         lichtara::shutdown();
///         Ok::<(), lichtara::SpawnError>(())
///     })
///     .await;
/// assert_eq!(report.tasks()[0].name(), "compactor");
/// # });
/// ```
pub fn spawn_blocking<F, R>(
    name: impl Into<Cow<'static, str>>,
    f: F,
) -> Result<TaskHandle, SpawnError>
where
    F: FnOnce() -> R + Send + 'static,
    R: IntoHookResult,
{
    Task::new(name).spawn_blocking(f)
}

/// A tracked task that was spawned.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// # lichtara::Shutdown::new().run(async {
/// let task = lichtara::spawn("ticker", std::future::pending::<()>()).unwrap();
/// assert_eq!(task.name(), "ticker");
/// # lichtara::shutdown();
/// # }).await;
/// # });
/// ```
#[derive(Debug)]
pub struct TaskHandle {
    name: Cow<'static, str>,
}

impl TaskHandle {
    /// The task's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Aborts a blocking task not begun yet when its waiter is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A task still running, as the lifecycle keeps it.
pub(crate) struct Live {
    name: Cow<'static, str>,
    started: Instant,
    /// Its outcome, and how long it ran.
    handle: JoinHandle<(Outcome, Duration)>,
}

/// The lifecycle's tracked tasks.
#[derive(Default)]
pub(crate) struct Tasks {
    state: Mutex<State>,
    /// How long the wind-down waits for the tasks; `None`: half the global
    /// deadline, so that a stuck task leaves the hooks the other half.
    timeout: Mutex<Option<Duration>>,
}

#[derive(Default)]
struct State {
    next: u64,
    live: BTreeMap<u64, Live>,
}

/// What a task does when its body has ended: its policy if it failed, and
/// its leaving the list. Wraps the body at spawn.
struct Ending {
    lifecycle: Weak<Lifecycle>,
    id: u64,
    name: Cow<'static, str>,
    on_failure: OnFailure,
    started: Instant,
}

impl Ending {
    async fn after(self, body: impl Future<Output = Outcome>) -> (Outcome, Duration) {
        let outcome = body.await;
        let elapsed = self.started.elapsed();
        if let Some(lifecycle) = self.lifecycle.upgrade() {
            lifecycle.tasks().ended(&lifecycle, &self, &outcome);
        }
        (outcome, elapsed)
    }
}

impl Tasks {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets how long the wind-down waits for the tasks.
    pub(crate) fn set_timeout(&self, timeout: Option<Duration>) {
        *self.timeout.lock().unwrap_or_else(PoisonError::into_inner) = timeout;
    }

    /// Until when the wind-down that began at `begun`, with `budget` to
    /// the global deadline, waits for the tasks.
    pub(crate) fn limit(&self, begun: Instant, budget: Duration) -> Instant {
        let timeout = self
            .timeout
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .unwrap_or(budget / 2)
            .min(budget);
        begun.checked_add(timeout).unwrap_or(begun)
    }

    /// Spawns a task with `spawn`, which runs its body through the
    /// [`Ending`] it is handed.
    fn start(
        &self,
        lifecycle: &Arc<Lifecycle>,
        task: Task,
        spawn: impl FnOnce(Ending) -> JoinHandle<(Outcome, Duration)>,
    ) -> Result<TaskHandle, SpawnError> {
        // Under the lock, as the wind-down takes the list: a task is either
        // refused or awaited. A task that ends at once waits here for its
        // entry before it removes it.
        let mut state = self.state();
        if lifecycle.has_begun() {
            return Err(SpawnError::ShuttingDown {
                name: task.name.into_owned(),
            });
        }
        let id = state.next;
        state.next += 1;
        let Task { name, on_failure } = task;
        let started = Instant::now();
        let handle = spawn(Ending {
            lifecycle: Arc::downgrade(lifecycle),
            id,
            name: name.clone(),
            on_failure,
            started,
        });
        state.live.insert(
            id,
            Live {
                name: name.clone(),
                started,
                handle,
            },
        );
        Ok(TaskHandle { name })
    }

    /// A task's end: its policy if it failed before shutdown, and off the
    /// list if shutdown has not begun (the wind-down awaits it otherwise).
    fn ended(&self, lifecycle: &Lifecycle, task: &Ending, outcome: &Outcome) {
        let name = &*task.name;
        if !outcome.is_success() && !lifecycle.has_begun() {
            let error = outcome.to_string();
            match task.on_failure {
                OnFailure::Shutdown => {
                    // The trigger first: it installs the default log.
                    lifecycle.trigger(Trigger::TaskFailed {
                        name: static_name(task.name.clone()),
                    });
                    tracing::error!(task = name, error, "task failed: shutting down");
                }
                // Before shutdown a `#[lichtara::main]` program may have no
                // subscriber yet: then the line goes straight to stderr.
                OnFailure::Log => {
                    crate::logging::warn_now(&format!("task {name} failed: {error}"));
                }
            }
        }
        // Once shutdown has begun the wind-down awaits the task (it took
        // the list): nothing to do, and no lock for 10,000 tasks ending at
        // once. Before, off the list, checked again under its lock.
        if lifecycle.has_begun() {
            return;
        }
        let mut state = self.state();
        if !lifecycle.has_begun() {
            state.live.remove(&task.id);
        }
    }

    /// Takes the tasks to await in the wind-down (shutdown has begun: no
    /// more are spawned).
    pub(crate) fn take(&self) -> Vec<Live> {
        std::mem::take(&mut self.state().live)
            .into_values()
            .collect()
    }
}

/// A name for the trigger, which lives as long as the process: a literal
/// as it is, a built name leaked once (only the first trigger is kept).
fn static_name(name: Cow<'static, str>) -> &'static str {
    match name {
        Cow::Borrowed(name) => name,
        Cow::Owned(name) => Box::leak(name.into_boxed_str()),
    }
}

/// Awaits the tasks until `limit`: each one's report, in spawn order.
/// Those still running at `limit` are aborted (blocking ones abandoned)
/// and reported timed out; one that ended meanwhile, behind a slower one,
/// keeps its outcome. One timer for them all, not one a task.
pub(crate) async fn wind_down(tasks: Vec<Live>, limit: Instant) -> Vec<TaskReport> {
    let mut tasks = tasks;
    let mut ended: Vec<Option<(Outcome, Duration)>> = Vec::with_capacity(tasks.len());
    let all = async {
        for live in &mut tasks {
            ended.push(Some(joined((&mut live.handle).await, live.started)));
        }
    };
    // Past the limit, what is left timed out, unless it has just ended.
    let _ = tokio::time::timeout_at(limit, all).await;
    let mut reports = Vec::with_capacity(tasks.len());
    let mut ended = ended.into_iter();
    for mut live in tasks {
        let outcome = match ended.next().flatten() {
            Some(outcome) => outcome,
            None if live.handle.is_finished() => joined((&mut live.handle).await, live.started),
            None => {
                live.handle.abort();
                (Outcome::TimedOut, live.started.elapsed())
            }
        };
        reports.push(TaskReport {
            name: live.name,
            outcome: outcome.0,
            elapsed: outcome.1,
        });
    }
    reports
}

/// A task's end as its handle gives it.
fn joined(
    result: Result<(Outcome, Duration), tokio::task::JoinError>,
    started: Instant,
) -> (Outcome, Duration) {
    result.unwrap_or_else(|err| {
        (
            Outcome::Error(format!("the task was lost: {err}")),
            started.elapsed(),
        )
    })
}
