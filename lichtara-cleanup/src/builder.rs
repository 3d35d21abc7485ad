//! [`Shutdown`]: the sequence without `#[lichtara::main]`.

use std::borrow::Cow;
use std::future::Future;
use std::time::Duration;

use crate::hook::{Hook, HookKind, HookMeta, HookRunner, IntoHookResult, box_hook};
use crate::registry::Selection;
use crate::report::{MainOutcome, ShutdownReport, Trigger};
use crate::{config, drive, lifecycle, supervisor};

/// Runs an application future and then the shutdown sequence, for programs
/// that build their own runtime instead of using `#[lichtara::main]`.
///
/// It listens for the same signals, collects the `#[lichtara::cleanup]`
/// hooks as well as those added with [`hook`](Self::hook), and returns the
/// [`ShutdownReport`] instead of exiting: the caller decides what to do with
/// [`exit_code`](ShutdownReport::exit_code). One sequence runs per process:
/// a second `run` is refused (exit code 2). To test shutdown logic, many
/// times in one test binary, use [`lichtara::testing`](crate::testing).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let report = lichtara::Shutdown::new()
///     .timeout(Duration::from_secs(5))
///     .hook("close files", 1, Some(Duration::from_secs(1)), || async {
///         Ok::<(), std::io::Error>(())
///     })
///     .run(async {
///         // the application: serve until lichtara::signalled() resolves
///     })
///     .await;
/// assert_eq!(report.exit_code(), 0);
/// # });
/// ```
#[must_use = "a Shutdown does nothing until `run` is awaited"]
#[derive(Default)]
pub struct Shutdown {
    timeout: Option<Duration>,
    main_timeout: Option<Duration>,
    tasks_timeout: Option<Duration>,
    hooks: Vec<Hook>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hooks: Vec<_> = self.hooks.iter().map(|hook| &hook.meta.name).collect();
        f.debug_struct("Shutdown")
            .field("timeout", &self.timeout)
            .field("main_timeout", &self.main_timeout)
            .field("tasks_timeout", &self.tasks_timeout)
            .field("hooks", &hooks)
            .finish()
    }
}

impl Shutdown {
    /// A sequence with the default global deadline (10 s) and only the
    /// registered hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the global deadline, counted from the trigger.
    /// `LICHTARA_SHUTDOWN_TIMEOUT` overrides it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets how long the application future may wind down once shutdown
    /// has begun, counted from the trigger and never past the global
    /// deadline; by default half of it. Past it, it is dropped and
    /// reported [`MainOutcome::TimedOut`] (exit code 1), and the hooks run.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let report = lichtara::Shutdown::new()
    ///     .main_timeout(Duration::from_millis(50))
    ///     .hook("flush", 0, None, || async {})
    ///     .run(async {
    ///         lichtara::shutdown();
    ///         lichtara::signalled().await;
    ///         std::future::pending::<()>().await; // never winds down
    ///     })
    ///     .await;
    /// assert_eq!(report.main(), &lichtara::MainOutcome::TimedOut);
    /// assert!(report.hooks()[0].outcome().is_success());
    /// # });
    /// ```
    pub fn main_timeout(mut self, timeout: Duration) -> Self {
        self.main_timeout = Some(timeout);
        self
    }

    /// Sets how long the wind-down waits for the tracked tasks
    /// ([`spawn`](crate::spawn)), counted from the trigger and never past
    /// the global deadline; by default half of it. Those still running
    /// then are abandoned and reported `timed out`, and the hooks run in
    /// what is left (nothing, for a timeout as long as the deadline).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let report = lichtara::Shutdown::new()
    ///     .tasks_timeout(Duration::from_millis(50))
    ///     .run(async {
    ///         lichtara::spawn("stuck", std::future::pending::<()>())?;
    ///         lichtara::shutdown();
    ///         Ok::<(), lichtara::SpawnError>(())
    ///     })
    ///     .await;
    /// assert_eq!(report.tasks()[0].outcome(), &lichtara::Outcome::TimedOut);
    /// assert_eq!(report.exit_code(), 1);
    /// # });
    /// ```
    pub fn tasks_timeout(mut self, timeout: Duration) -> Self {
        self.tasks_timeout = Some(timeout);
        self
    }

    /// Adds a hook: `f` is called at shutdown in phase `order`, and its
    /// future is abandoned after `timeout`. It may return `()` or
    /// `Result<(), E>` with `E: Into<BoxError>`.
    pub fn hook<F, Fut>(
        mut self,
        name: impl Into<Cow<'static, str>>,
        order: i32,
        timeout: Option<Duration>,
        f: F,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: IntoHookResult,
    {
        self.hooks.push(Hook {
            meta: HookMeta {
                name: name.into(),
                order,
                timeout,
                kind: HookKind::Builder,
                source: None,
                detail: None,
            },
            runner: HookRunner::Boxed(Box::new(move || box_hook(f()))),
        });
        self
    }

    /// Runs `app` until it returns or shutdown begins, lets it wind down if
    /// it awaits [`signalled()`](crate::signalled), runs the hooks and
    /// returns the report.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future mid-way abandons the sequence,
    /// and no other can run in this process.
    pub async fn run<F>(self, app: F) -> ShutdownReport
    where
        F: Future,
        F::Output: crate::report::MainOutput,
    {
        let lifecycle = lifecycle::process();
        if !lifecycle.claim() {
            crate::logging::error_now(
                "a shutdown sequence already ran in this process: this one is refused, its application not run (to test shutdown logic, use lichtara::testing)",
            );
            return ShutdownReport {
                trigger: lifecycle.triggered().map_or(Trigger::Requested, |(t, _)| t),
                main: MainOutcome::Refused,
                hooks: Vec::new(),
                tasks: Vec::new(),
                deadline: lifecycle.budget(),
                deadline_passed: false,
                elapsed: Duration::ZERO,
            };
        }
        match config::resolve_timeout(self.timeout) {
            Ok(budget) => lifecycle.set_budget(budget),
            Err(err) => {
                tracing::error!(error = %err, "ignoring the environment's deadline");
                lifecycle.set_budget(self.timeout.unwrap_or(config::DEFAULT_TIMEOUT));
            }
        }
        if let Err(err) = supervisor::start(false) {
            tracing::warn!(error = %err, "cannot listen for signals; shutdown begins only when the application ends");
        }
        lifecycle.tasks().set_timeout(self.tasks_timeout);
        lifecycle.set_main_timeout(self.main_timeout);
        for hook in self.hooks {
            lifecycle.add(hook);
        }
        drive::drive(lifecycle, app, &Selection::default()).await
    }
}
