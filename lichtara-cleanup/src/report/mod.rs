//! What a shutdown did: per hook, per phase, and the exit code that follows.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::hook::HookMeta;
use crate::unwind::panic_message;

mod json;

pub(crate) use json::{write_if_asked, write_unfinished_if_asked};

/// Milliseconds with microsecond precision, for log fields: `12.345`.
pub(crate) fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// An error with its sources: `outer: inner: root`.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // anyhow and others often repeat the source in the outer message.
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// How a finished hook (or a resource instance's cleanup) ended.
pub(crate) fn outcome_of(
    finished: Result<Result<(), crate::error::BoxError>, Box<dyn std::any::Any + Send>>,
) -> Outcome {
    match finished {
        Ok(Ok(())) => Outcome::Ok,
        Ok(Err(err)) => Outcome::Error(error_chain(&*err)),
        Err(payload) => Outcome::Panicked(panic_message(&*payload)),
    }
}

/// What began the shutdown.
///
/// # Examples
///
/// ```
/// use lichtara::Trigger;
///
/// let trigger = Trigger::Signal { name: "SIGTERM", number: 15 };
/// assert_eq!(trigger.to_string(), "signal SIGTERM");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Trigger {
    /// A signal (Unix) or console event (Windows) arrived.
    Signal {
        /// Its name: `SIGTERM`, `SIGINT`, `SIGHUP`, `ctrl-c`, …
        name: &'static str,
        /// Its number on Unix (0 for Windows console events).
        number: i32,
    },
    /// `main` (or the application future) returned success.
    MainReturned,
    /// `main` returned an error or a failing exit code.
    MainFailed,
    /// `main` panicked.
    MainPanicked,
    /// [`shutdown()`](crate::shutdown) was called.
    Requested,
    /// A tracked task ([`spawn`](crate::spawn)) failed, and its policy
    /// begins the shutdown.
    TaskFailed {
        /// The task's name.
        name: &'static str,
    },
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Signal { name, .. } => write!(f, "signal {name}"),
            Trigger::MainReturned => f.write_str("main returned"),
            Trigger::MainFailed => f.write_str("main failed"),
            Trigger::MainPanicked => f.write_str("main panicked"),
            Trigger::Requested => f.write_str("shutdown requested"),
            Trigger::TaskFailed { name } => write!(f, "task {name} failed"),
        }
    }
}

/// How the application's own future (`main`) ended.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new().run(async {}).await;
/// assert_eq!(report.main(), &lichtara::MainOutcome::Success);
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MainOutcome {
    /// It returned `()`, `Ok(())` or a success exit code.
    Success,
    /// It returned an error (code 1) or a failing exit code.
    Failure {
        /// The exit code it asked for.
        code: u8,
        /// The error it returned (its `Debug` form, as Rust's own `main`
        /// shows it), if it returned one.
        error: Option<String>,
    },
    /// It panicked.
    Panicked {
        /// The panic message.
        message: String,
    },
    /// Shutdown began while it ran and it never asked for
    /// [`signalled()`](crate::signalled), so it could not react: it was
    /// dropped at once.
    Dropped,
    /// It was still running at the global deadline.
    Abandoned,
    /// It was still winding down at its own timeout (half the global
    /// deadline by default): the hooks ran without waiting for it.
    TimedOut,
    /// It was not run: a sequence had already run in this process (a
    /// second [`Shutdown::run`](crate::Shutdown::run)).
    Refused,
}

/// What `main` (or the application future given to [`run`](crate::run),
/// [`Shutdown::run`](crate::Shutdown::run) or
/// [`testing::run`](crate::testing::run)) may return: `()`, an
/// [`ExitCode`](std::process::ExitCode), or `Result<T, E>` of one of them
/// with `E: Debug`. An `Err` is kept in the report (and logged through
/// `tracing` as `main returned an error`), not printed as Rust's own `main`
/// prints `Error: …`.
///
/// # Examples
///
/// ```
/// use lichtara::{MainOutcome, MainOutput};
///
/// assert_eq!(().into_outcome(), MainOutcome::Success);
/// let failed: Result<(), &str> = Err("no database");
/// assert_eq!(
///     failed.into_outcome(),
///     MainOutcome::Failure { code: 1, error: Some("\"no database\"".into()) }
/// );
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a return type lichtara can turn into an exit code",
    label = "`main` (or the application future) must return `()`, `ExitCode` or `Result<T, E>`",
    note = "return `()`, `std::process::ExitCode`, or `Result<T, E>` of one of them where `E: Debug` (`anyhow::Result<()>` works)"
)]
pub trait MainOutput {
    /// How `main` ended, given what it returned.
    fn into_outcome(self) -> MainOutcome;
}

impl MainOutput for () {
    fn into_outcome(self) -> MainOutcome {
        MainOutcome::Success
    }
}

impl MainOutput for std::process::ExitCode {
    fn into_outcome(self) -> MainOutcome {
        use std::process::ExitCode;
        if self == ExitCode::SUCCESS {
            return MainOutcome::Success;
        }
        let code = (1..=u8::MAX)
            .find(|n| ExitCode::from(*n) == self)
            .unwrap_or(1);
        MainOutcome::Failure { code, error: None }
    }
}

impl<T: MainOutput, E: fmt::Debug> MainOutput for Result<T, E> {
    fn into_outcome(self) -> MainOutcome {
        match self {
            Ok(output) => output.into_outcome(),
            // Debug, as Rust's own `main` shows it: anyhow's is the error
            // with its causes.
            Err(err) => MainOutcome::Failure {
                code: 1,
                error: Some(format!("{err:?}")),
            },
        }
    }
}

/// How one hook ended.
///
/// # Examples
///
/// ```
/// use lichtara::Outcome;
///
/// assert!(Outcome::Ok.is_success());
/// assert!(!Outcome::TimedOut.is_success());
/// assert_eq!(Outcome::NotRun.to_string(), "not run");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It returned `()` or `Ok(())`.
    Ok,
    /// It returned an error; the message includes the error's sources.
    Error(String),
    /// It panicked; the panic message.
    Panicked(String),
    /// It passed its own timeout or the global deadline and was abandoned.
    TimedOut,
    /// The global deadline passed before its phase began.
    NotRun,
}

impl Outcome {
    /// Whether the hook finished without error.
    #[must_use]
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Ok)
    }

    /// The short word the logs use: `ok`, `error`, `panicked`, `timed out`,
    /// `not run`.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error(_) => "error",
            Outcome::Panicked(_) => "panicked",
            Outcome::TimedOut => "timed out",
            Outcome::NotRun => "not run",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Error(message) => write!(f, "error: {message}"),
            Outcome::Panicked(message) => write!(f, "panicked: {message}"),
            other => f.write_str(other.as_str()),
        }
    }
}

/// What one hook did during the shutdown.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .hook("flush", 1, None, || async {})
///     .run(async {})
///     .await;
/// let hook = report.hooks().iter().find(|h| h.name() == "flush").unwrap();
/// assert_eq!(hook.order(), 1);
/// assert!(hook.outcome().is_success());
/// # });
/// ```
#[derive(Clone)]
pub struct HookReport {
    pub(crate) name: Cow<'static, str>,
    pub(crate) order: i32,
    /// The outcome, but for the failures' messages (in `more`).
    ended: Ended,
    /// The timeout in nanoseconds; `u64::MAX` for none. The attribute
    /// bounds timeouts to an hour; a builder's past 584 years (what u64
    /// nanoseconds hold) is kept as that, which the clock cannot reach.
    timeout: u64,
    elapsed: u64,
    /// What few hooks have: a failure's message, a detail.
    more: Option<Box<More>>,
}

// A shutdown with 10,000 hooks holds 10,000 of these: each byte here is
// 10 KB of pages touched at shutdown.
const _: () = assert!(std::mem::size_of::<HookReport>() <= 56);

/// A hook's outcome, its failures' messages aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ended {
    Ok,
    Failed,
    TimedOut,
    NotRun,
}

#[derive(Clone, Debug, Default)]
struct More {
    /// `Outcome::Error` or `Outcome::Panicked`, when `Ended::Failed`.
    failure: Option<Outcome>,
    detail: Option<String>,
}

static OK: Outcome = Outcome::Ok;
static TIMED_OUT: Outcome = Outcome::TimedOut;
static NOT_RUN: Outcome = Outcome::NotRun;

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX - 1)
}

impl HookReport {
    /// The report of a hook that did not run (yet).
    pub(crate) fn new(name: Cow<'static, str>, order: i32, timeout: Option<Duration>) -> Self {
        Self {
            name,
            order,
            ended: Ended::NotRun,
            timeout: timeout.map_or(u64::MAX, nanos),
            elapsed: 0,
            more: None,
        }
    }

    /// The report of a registered hook that did not run (yet).
    pub(crate) fn registered(name: &'static str, order: i32, timeout: Option<Duration>) -> Self {
        Self::new(Cow::Borrowed(name), order, timeout)
    }

    /// The report of a hook that did not run (yet).
    pub(crate) fn not_run(meta: HookMeta) -> Self {
        Self::new(meta.name, meta.order, meta.timeout)
    }

    /// Says how the hook ended.
    pub(crate) fn set_outcome(&mut self, outcome: Outcome) {
        self.ended = match outcome {
            Outcome::Ok => Ended::Ok,
            Outcome::TimedOut => Ended::TimedOut,
            Outcome::NotRun => Ended::NotRun,
            failure => {
                self.more.get_or_insert_default().failure = Some(failure);
                return self.ended = Ended::Failed;
            }
        };
        if let Some(more) = &mut self.more {
            more.failure = None;
        }
    }

    /// Says how long it ran.
    pub(crate) fn set_elapsed(&mut self, elapsed: Duration) {
        self.elapsed = nanos(elapsed);
    }

    /// Says what it left besides its outcome.
    pub(crate) fn set_detail(&mut self, detail: Option<String>) {
        match (detail, &mut self.more) {
            (None, None) => {}
            (detail, more) => more.get_or_insert_default().detail = detail,
        }
    }

    /// What the hook said of itself besides its outcome, if anything: for a
    /// child process of `lichtara::process`, how it exited.
    #[must_use]
    pub fn detail(&self) -> Option<&str> {
        self.more.as_ref()?.detail.as_deref()
    }

    /// The hook's name: `module::path::item` unless `name = "…"` set one.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hook's `order` (its phase).
    #[must_use]
    pub fn order(&self) -> i32 {
        self.order
    }

    /// The hook's own timeout, if it has one.
    #[must_use]
    pub fn timeout(&self) -> Option<Duration> {
        (self.timeout != u64::MAX).then(|| Duration::from_nanos(self.timeout))
    }

    /// How it ended.
    #[must_use]
    pub fn outcome(&self) -> &Outcome {
        match self.ended {
            Ended::Ok => &OK,
            Ended::TimedOut => &TIMED_OUT,
            Ended::NotRun => &NOT_RUN,
            Ended::Failed => self
                .more
                .as_ref()
                .and_then(|more| more.failure.as_ref())
                .unwrap_or(&NOT_RUN),
        }
    }

    /// How long it ran (zero when it did not run).
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.elapsed)
    }
}

impl fmt::Debug for HookReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookReport")
            .field("name", &self.name)
            .field("order", &self.order)
            .field("timeout", &self.timeout())
            .field("outcome", self.outcome())
            .field("elapsed", &self.elapsed())
            .field("detail", &self.detail())
            .finish()
    }
}

/// The record of one shutdown: what began it, how `main` ended, every hook's
/// outcome, and the exit code that follows.
///
/// | code | meaning |
/// |---|---|
/// | 0 | clean, including a clean shutdown after SIGTERM |
/// | 1 | `main` returned an error, or a hook failed, panicked or timed out |
/// | 2 | the sequence was refused: a bad `LICHTARA_*` setting, or a second [`Shutdown::run`](crate::Shutdown::run) in one process |
/// | 101 | `main` panicked |
/// | 124 | the global deadline passed |
/// | 128+N | a second signal N forced the exit (the process dies of N) |
///
/// `main` returning another failing `ExitCode` keeps that code.
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .hook("fails", 0, None, || async { Err::<(), _>(std::io::Error::other("disk full")) })
///     .run(async {})
///     .await;
/// assert_eq!(report.exit_code(), 1);
/// assert!(report.to_string().contains("disk full"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    pub(crate) trigger: Trigger,
    pub(crate) main: MainOutcome,
    pub(crate) hooks: Vec<HookReport>,
    pub(crate) tasks: Vec<TaskReport>,
    pub(crate) deadline: Duration,
    pub(crate) deadline_passed: bool,
    pub(crate) elapsed: Duration,
}

/// How a tracked task ([`spawn`](crate::spawn)) that was running when
/// shutdown began ended: `ok` (it finished), `error`, `panicked`, or
/// `timed out` (still running when the wind-down's time ran out).
///
/// # Examples
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .run(async {
///         lichtara::spawn("consumer", async { lichtara::signalled().await })?;
///         lichtara::shutdown();
///         Ok::<(), lichtara::SpawnError>(())
///     })
///     .await;
/// let task = &report.tasks()[0];
/// assert_eq!((task.name(), task.outcome()), ("consumer", &lichtara::Outcome::Ok));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct TaskReport {
    pub(crate) name: Cow<'static, str>,
    pub(crate) outcome: Outcome,
    pub(crate) elapsed: Duration,
}

impl TaskReport {
    /// The task's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it ended.
    #[must_use]
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// How long it ran, from its spawn.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

impl ShutdownReport {
    /// What began the shutdown.
    #[must_use]
    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// How `main` (or the application future) ended.
    #[must_use]
    pub fn main(&self) -> &MainOutcome {
        &self.main
    }

    /// Every hook, in the order the sequence ran them.
    #[must_use]
    pub fn hooks(&self) -> &[HookReport] {
        &self.hooks
    }

    /// The tracked tasks that were running when shutdown began (or that
    /// began it), in the order they were spawned.
    #[must_use]
    pub fn tasks(&self) -> &[TaskReport] {
        &self.tasks
    }

    /// The global deadline: how long the shutdown had, from the trigger.
    #[must_use]
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Whether the global deadline passed before the sequence ended.
    #[must_use]
    pub fn deadline_passed(&self) -> bool {
        self.deadline_passed
    }

    /// Time from the trigger to the end of the last hook.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// How many hooks and tasks did not end `ok`.
    fn failures(&self) -> usize {
        let hooks = self.hooks.iter().map(HookReport::outcome);
        let tasks = self.tasks.iter().map(TaskReport::outcome);
        hooks
            .chain(tasks)
            .filter(|outcome| !outcome.is_success())
            .count()
    }

    /// The process exit code this shutdown stands for (see the table above).
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        if self.deadline_passed || self.main == MainOutcome::Abandoned {
            124
        } else if self.main == MainOutcome::Refused {
            2
        } else if let MainOutcome::Panicked { .. } = self.main {
            101
        } else if let MainOutcome::Failure { code, .. } = self.main {
            i32::from(code)
        } else if self.failures() > 0 || self.main == MainOutcome::TimedOut {
            1
        } else {
            0
        }
    }
}

impl ShutdownReport {
    /// The table's lines of the hooks that did not end `ok`.
    pub(crate) fn not_ok_table(&self) -> String {
        let mut table = String::new();
        for hook in self
            .hooks
            .iter()
            .filter(|hook| !hook.outcome().is_success())
        {
            let _ = fmt::write(&mut table, format_args!("{}", Row(hook)));
        }
        for task in self.tasks.iter().filter(|task| !task.outcome.is_success()) {
            let _ = fmt::write(&mut table, format_args!("{}", TaskRow(task)));
        }
        table
    }
}

/// One hook's line of the table.
struct Row<'a>(&'a HookReport);

impl fmt::Display for Row<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hook = self.0;
        writeln!(
            f,
            "  [{:>4}] {:<40} {:>10.1?}  {}{}",
            hook.order,
            hook.name,
            hook.elapsed(),
            hook.outcome(),
            hook.detail()
                .map_or_else(String::new, |d| format!(" ({d})"))
        )
    }
}

/// A task's line in the table: `task` where a hook has its order.
struct TaskRow<'a>(&'a TaskReport);

impl fmt::Display for TaskRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let task = self.0;
        writeln!(
            f,
            "  [task] {:<40} {:>10.1?}  {}",
            task.name, task.elapsed, task.outcome
        )
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.main == MainOutcome::Refused {
            return writeln!(
                f,
                "shutdown refused: a sequence had already run in this process; exit code {}",
                self.exit_code()
            );
        }
        writeln!(
            f,
            "shutdown after {}: {} hooks, {} not ok, {:?}, exit code {}",
            self.trigger,
            self.hooks.len(),
            self.failures(),
            self.elapsed,
            self.exit_code()
        )?;
        for hook in &self.hooks {
            Row(hook).fmt(f)?;
        }
        for task in &self.tasks {
            TaskRow(task).fmt(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(main: MainOutcome, outcomes: &[Outcome], deadline_passed: bool) -> ShutdownReport {
        ShutdownReport {
            trigger: Trigger::Requested,
            main,
            hooks: outcomes
                .iter()
                .map(|outcome| {
                    let mut hook = HookReport::new("h".into(), 0, None);
                    hook.set_outcome(outcome.clone());
                    hook
                })
                .collect(),
            tasks: Vec::new(),
            deadline: Duration::from_secs(10),
            deadline_passed,
            elapsed: Duration::ZERO,
        }
    }

    #[test]
    fn exit_codes_follow_the_table() {
        use MainOutcome::*;
        assert_eq!(report(Success, &[Outcome::Ok], false).exit_code(), 0);
        assert_eq!(report(Dropped, &[Outcome::Ok], false).exit_code(), 0);
        assert_eq!(
            report(
                Failure {
                    code: 1,
                    error: None
                },
                &[],
                false
            )
            .exit_code(),
            1
        );
        assert_eq!(
            report(
                Failure {
                    code: 3,
                    error: None
                },
                &[],
                false
            )
            .exit_code(),
            3
        );
        assert_eq!(
            report(Success, &[Outcome::Error("x".into())], false).exit_code(),
            1
        );
        assert_eq!(
            report(Success, &[Outcome::Panicked("x".into())], false).exit_code(),
            1
        );
        assert_eq!(report(Success, &[Outcome::TimedOut], false).exit_code(), 1);
        let panicked = Panicked {
            message: "p".into(),
        };
        assert_eq!(
            report(panicked.clone(), &[Outcome::Error("x".into())], false).exit_code(),
            101
        );
        assert_eq!(report(panicked, &[], true).exit_code(), 124);
        assert_eq!(report(Success, &[Outcome::NotRun], true).exit_code(), 124);
        assert_eq!(report(Abandoned, &[], false).exit_code(), 124);
    }
}
