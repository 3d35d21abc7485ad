//! The entry points that run the process-wide lifecycle and end the
//! process with its exit code: `#[lichtara::main]` and [`run`].

use std::future::Future;
use std::time::Duration;

use crate::registry::{self, Selection};
use crate::report::ShutdownReport;
use crate::{config, drive, exit, lifecycle, logging, supervisor};

/// What `#[lichtara::main]` was given. Not public API.
#[derive(Debug, Default)]
pub struct MainConfig {
    /// The global deadline, from `timeout = "…"`.
    pub timeout: Option<Duration>,
    /// How long `main` winds down, from `main_timeout = "…"`.
    pub main_timeout: Option<Duration>,
    /// How long the tracked tasks wind down, from `tasks_timeout = "…"`.
    pub tasks_timeout: Option<Duration>,
}

/// Runs a `#[lichtara::main]` program: the hook listing if asked, else
/// `body` on the runtime `builder` makes, then the sequence, then exits with
/// the report's code. Never returns. Not public API.
pub fn run_main<F, T>(config: MainConfig, mut builder: tokio::runtime::Builder, body: F) -> T
where
    F: Future<Output = T>,
    T: crate::report::MainOutput,
{
    list_hooks_if_asked();
    start(config.timeout);
    let lifecycle = lifecycle::process();
    lifecycle.tasks().set_timeout(config.tasks_timeout);
    lifecycle.set_main_timeout(config.main_timeout);
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => fail_at_startup(&err),
    };
    if runtime.handle().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
        // `main` on this thread, the sequence on a thread of its own: a
        // `main` that blocks its thread while winding down is left behind
        // at its timeout, and the hooks still run. Not on a worker: a hook
        // that blocks its worker would hold a sequencer woken there.
        let (ended, main_ended) = tokio::sync::oneshot::channel();
        let runtime_handle = runtime.handle().clone();
        let sequence = std::thread::Builder::new()
            .name("lichtara-shutdown".into())
            .spawn(move || {
                let report = runtime_handle.block_on(drive::drive_beside(
                    lifecycle,
                    main_ended,
                    &Selection::default(),
                ));
                // The runtime is not dropped: exiting ends every thread.
                end(&report)
            });
        match sequence {
            Ok(_) => runtime.block_on(drive::main_side(lifecycle, body, ended)),
            Err(err) => fail_at_startup(&format!("cannot start the shutdown thread: {err}")),
        }
    }
    let report = runtime.block_on(drive::drive(lifecycle, body, &Selection::default()));
    // The runtime is not dropped: a hook abandoned on the blocking pool
    // would hold the drop until it returns. Exiting ends every thread.
    end(&report)
}

/// Runs `app` as the program, for a service that keeps `#[tokio::main]`
/// (or builds its runtime itself): everything `#[lichtara::main]` does —
/// signals, the hooks and managed instances, the global deadline, the log
/// and the exit code — on the runtime it is awaited on. It ends the
/// process: it never returns.
///
/// It runs the process-wide sequence, so it can be awaited once;
/// `LICHTARA_HOOKS=list` lists the hooks and exits 0 before `app` runs.
/// The global deadline is 10 s unless `LICHTARA_SHUTDOWN_TIMEOUT` says
/// otherwise; [`Shutdown`](crate::Shutdown) sets it in code and returns
/// the report instead of exiting.
///
/// # Examples
///
/// ```no_run
/// #[lichtara::cleanup(order = 1, timeout = "5s")]
/// async fn flush() {}
///
/// #[tokio::main]
/// async fn main() {
///     lichtara::run(async {
///         // serve until shutdown begins
///         lichtara::signalled().await;
///     })
///     .await
/// }
/// ```
pub async fn run<F>(app: F) -> !
where
    F: Future,
    F::Output: crate::report::MainOutput,
{
    list_hooks_if_asked();
    start(None);
    let report = drive::drive(lifecycle::process(), app, &Selection::default()).await;
    // Not returned to `main`: `#[tokio::main]` would drop its runtime, and
    // a hook abandoned on the blocking pool would hold the drop forever.
    end(&report)
}

/// Ends the process with the report's code, after saying what did not end
/// well and writing the report `LICHTARA_REPORT` asks for.
fn end(report: &ShutdownReport) -> ! {
    // The report is written (by the sequence, before its summary); the
    // exit is claimed before the last lines: should stderr block them, the
    // watchdog ends the process with this code.
    exit::exit_after(report.exit_code(), || {
        if report.exit_code() != 0 {
            let table = report.not_ok_table();
            if !table.is_empty() {
                tracing::warn!("hooks that did not end ok:\n{}", table.trim_end());
            }
        }
    })
}

/// `LICHTARA_HOOKS=list`: prints the hooks and exits 0.
pub(crate) fn list_hooks_if_asked() {
    match config::hooks_listing_requested() {
        Ok(true) => {
            let mut out = std::io::stdout().lock();
            let code = match registry::write_listing(&mut out) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            drop(out);
            crate::load::quiet();
            exit::exit(code)
        }
        Ok(false) => {}
        Err(err) => fail_at_startup(&err),
    }
}

/// Claims the process-wide sequence and starts listening for signals,
/// with the watchdog: the caller ends the process with the report's code.
fn start(timeout: Option<Duration>) {
    let lifecycle = lifecycle::process();
    if !lifecycle.claim() {
        fail_at_startup(
            &"a shutdown sequence already runs in this process: `lichtara::run` and `#[lichtara::main]` run it once",
        );
    }
    match config::resolve_timeout(timeout) {
        Ok(budget) => {
            lifecycle.set_budget(budget);
            if let Some(warning) = config::grace_period_warning(budget) {
                logging::warn_now(&warning);
            }
        }
        Err(err) => fail_at_startup(&err),
    }
    lifecycle.enable_default_logging();
    lifecycle.exit_at_end();
    #[cfg(unix)]
    crate::signal::early::main_began();
    if let Err(err) = supervisor::start(true) {
        logging::warn_now(&format!(
            "cannot listen for signals ({err}); shutdown begins only when main ends"
        ));
    }
}

/// Exit code for a setting that keeps the program from starting.
const STARTUP_FAILURE: i32 = 2;

fn fail_at_startup(err: &dyn std::fmt::Display) -> ! {
    logging::error_now(&err.to_string());
    // The error says why nothing runs: no exit-time warning besides.
    crate::load::quiet();
    exit::exit(STARTUP_FAILURE)
}
