//! The shutdown sequence around the application's future, shared by
//! `#[lichtara::main]`, [`run`](crate::run), [`Shutdown::run`](crate::Shutdown::run)
//! and [`testing`](crate::testing): wait for a trigger, let `main` wind
//! down, run the hooks, report.

use std::future::Future;
use std::sync::Arc;

use crate::lifecycle::{Lifecycle, scoped};
use crate::registry::{self, Selection};
use crate::report::{MainOutcome, MainOutput, Outcome, ShutdownReport, Trigger};
use crate::unwind::{CatchUnwind, panic_message};
use crate::{sequence, task};

/// Runs `app` as part of `lifecycle` until shutdown begins, then the
/// lifecycle's sequence of the hooks `selection` admits.
pub(crate) async fn drive<F>(
    lifecycle: &Arc<Lifecycle>,
    app: F,
    selection: &Selection,
) -> ShutdownReport
where
    F: Future,
    F::Output: MainOutput,
{
    scoped(lifecycle, drive_scoped(lifecycle, app, selection)).await
}

async fn drive_scoped<F>(
    lifecycle: &Arc<Lifecycle>,
    app: F,
    selection: &Selection,
) -> ShutdownReport
where
    F: Future,
    F::Output: MainOutput,
{
    watch_systemd(lifecycle);
    // Boxed, not pinned on the stack: a `main` that cannot react is dropped
    // (its locals released) before the hooks run.
    let mut app = Box::pin(CatchUnwind::new(app));
    let returned = tokio::select! {
        biased;
        finished = &mut app => Some(main_outcome(finished)),
        () = lifecycle.begun() => None,
    };
    let rest = |limit| async move {
        if !lifecycle.observed() {
            tracing::debug!("main never asked for lichtara::signalled(): dropping it");
            drop(app);
            return Some(MainOutcome::Dropped);
        }
        tracing::info!("waiting for main to wind down");
        // Past its limit it is dropped: its locals are released before the
        // hooks run.
        tokio::time::timeout_at(limit, app)
            .await
            .ok()
            .map(main_outcome)
    };
    after_begun(lifecycle, selection, returned, rest).await
}

/// The sequence of a `main` that runs on a thread of its own (the
/// `#[lichtara::main]` thread of a multi-thread runtime): `main` tells how
/// it ended through `ended` ([`main_side`]). Should it block its thread,
/// this goes on without it at its timeout, on the runtime's workers.
pub(crate) async fn drive_beside(
    lifecycle: &Arc<Lifecycle>,
    mut ended: tokio::sync::oneshot::Receiver<MainOutcome>,
    selection: &Selection,
) -> ShutdownReport {
    scoped(lifecycle, async {
        watch_systemd(lifecycle);
        let returned = tokio::select! {
            biased;
            outcome = &mut ended => Some(outcome.unwrap_or(MainOutcome::Dropped)),
            () = lifecycle.begun() => None,
        };
        let rest = |limit| async move {
            if lifecycle.observed() {
                tracing::info!("waiting for main to wind down");
            }
            match tokio::time::timeout_at(limit, ended).await {
                Ok(outcome) => Some(outcome.unwrap_or(MainOutcome::Dropped)),
                Err(_) => None,
            }
        };
        after_begun(lifecycle, selection, returned, rest).await
    })
    .await
}

/// `main`'s side of [`drive_beside`]: runs `app` until it ends, or until
/// shutdown begins if it cannot react (then it is dropped), and says how it
/// ended. Never returns: the sequence's side ends the process.
pub(crate) async fn main_side<F>(
    lifecycle: &Arc<Lifecycle>,
    app: F,
    ended: tokio::sync::oneshot::Sender<MainOutcome>,
) -> !
where
    F: Future,
    F::Output: MainOutput,
{
    let outcome = scoped(lifecycle, async {
        let mut app = Box::pin(CatchUnwind::new(app));
        tokio::select! {
            biased;
            finished = &mut app => main_outcome(finished),
            () = lifecycle.begun() => {
                if lifecycle.observed() {
                    main_outcome(app.await)
                } else {
                    tracing::debug!("main never asked for lichtara::signalled(): dropping it");
                    drop(app);
                    MainOutcome::Dropped
                }
            }
        }
    })
    .await;
    let _ = ended.send(outcome);
    std::future::pending().await
}

/// What the process-wide lifecycle runs beside `main`: systemd's
/// watchdog pings, and the reloader (when reload hooks are registered).
fn watch_systemd(lifecycle: &Arc<Lifecycle>) {
    if lifecycle.id() == 0 {
        #[cfg(unix)]
        crate::systemd::spawn_watchdog();
        crate::reload::spawn_reloader(lifecycle);
    }
}

/// Everything from the trigger on: `main` (its outcome if it `returned`,
/// else `rest` with its limit gives it, `None` past the limit) and the
/// tracked tasks wind down side by side, then the hooks run.
async fn after_begun<R, Fut>(
    lifecycle: &Arc<Lifecycle>,
    selection: &Selection,
    returned: Option<MainOutcome>,
    rest: R,
) -> ShutdownReport
where
    R: FnOnce(tokio::time::Instant) -> Fut,
    Fut: Future<Output = Option<MainOutcome>>,
{
    if let Some(main) = &returned {
        lifecycle.trigger(trigger_for(main));
    }
    let (trigger, started) = lifecycle
        .triggered()
        .unwrap_or((Trigger::Requested, tokio::time::Instant::now()));
    let deadline = lifecycle.deadline();
    // Shutdown has begun: no task is spawned from now on, and those running
    // wind down beside `main`.
    let tasks = lifecycle.tasks().take();
    let tasks_limit = lifecycle.tasks().limit(started, lifecycle.budget());
    let main_limit = lifecycle.main_limit(started);
    let main = async {
        match returned {
            Some(main) => main,
            None => match rest(main_limit).await {
                Some(main) => main,
                // Its own timeout, before the deadline: the hooks have the
                // rest.
                None if main_limit < deadline => MainOutcome::TimedOut,
                None => MainOutcome::Abandoned,
            },
        }
    };
    let (main, tasks, ()) = tokio::join!(
        main,
        task::wind_down(tasks, tasks_limit),
        // A reload running now is abandoned: its hooks are gone before
        // the cleanup hooks begin.
        async {
            if lifecycle.id() == 0 {
                crate::reload::settled().await;
            }
        }
    );
    log_main(&main);
    log_tasks(&tasks);
    // After an abandoned `main` the deadline has passed: every hook is
    // reported `not run`.
    let running = sequence::run(
        registry::take(lifecycle, selection),
        deadline,
        lifecycle.progress(),
    );
    #[cfg(unix)]
    let sequence = if lifecycle.id() == 0 {
        tokio::select! {
            sequence = running => sequence,
            () = crate::systemd::extend_while_running(deadline) => unreachable!("extending never ends"),
        }
    } else {
        running.await
    };
    #[cfg(not(unix))]
    let sequence = running.await;
    let report = ShutdownReport {
        trigger,
        main,
        hooks: sequence.hooks,
        tasks,
        deadline: lifecycle.budget(),
        deadline_passed: sequence.deadline_passed,
        elapsed: started.elapsed(),
    };
    if lifecycle.exits_at_end() {
        // Before the last lines, which a full stderr can block: the report
        // is on disk and the watchdog knows the exit code.
        crate::report::write_if_asked(&report);
        crate::exit::intend(report.exit_code());
    }
    log_summary(&report);
    lifecycle.finish();
    report
}

fn main_outcome<T: MainOutput>(finished: Result<T, Box<dyn std::any::Any + Send>>) -> MainOutcome {
    match finished {
        Ok(output) => output.into_outcome(),
        Err(payload) => MainOutcome::Panicked {
            message: panic_message(&*payload),
        },
    }
}

fn trigger_for(main: &MainOutcome) -> Trigger {
    match main {
        MainOutcome::Success => Trigger::MainReturned,
        MainOutcome::Panicked { .. } => Trigger::MainPanicked,
        _ => Trigger::MainFailed,
    }
}

fn log_main(main: &MainOutcome) {
    match main {
        MainOutcome::Success => tracing::debug!("main returned"),
        MainOutcome::Failure {
            code,
            error: Some(error),
        } => tracing::error!(code, "main returned an error: {error}"),
        MainOutcome::Failure { code, error: None } => {
            tracing::warn!(code, "main returned a failing exit code")
        }
        MainOutcome::Panicked { message } => {
            tracing::error!(panic = message.as_str(), "main panicked")
        }
        MainOutcome::Dropped => tracing::debug!("main dropped"),
        MainOutcome::TimedOut => {
            tracing::error!("main was still winding down at its timeout; the hooks run without it")
        }
        MainOutcome::Abandoned => {
            tracing::error!("main was still running at the global deadline; hooks not run");
        }
        MainOutcome::Refused => tracing::error!("main not run: the sequence was refused"),
    }
}

/// Each task that did not end ok, and one line for them all.
fn log_tasks(tasks: &[crate::report::TaskReport]) {
    if tasks.is_empty() {
        return;
    }
    let _batch = crate::logging::batch();
    for task in tasks {
        let elapsed_ms = crate::report::millis(task.elapsed());
        match task.outcome() {
            Outcome::Ok => {}
            Outcome::TimedOut => tracing::error!(
                task = task.name(),
                elapsed_ms,
                "task still running when its wind-down ended: abandoned"
            ),
            outcome => tracing::warn!(
                task = task.name(),
                elapsed_ms,
                outcome = outcome.as_str(),
                error = %outcome,
                "task failed"
            ),
        }
    }
    let ok = tasks
        .iter()
        .filter(|task| task.outcome().is_success())
        .count();
    tracing::info!(tasks = tasks.len(), ok, "tasks wound down");
}

fn log_summary(report: &ShutdownReport) {
    let failed = report
        .hooks()
        .iter()
        .filter(|hook| !hook.outcome().is_success())
        .count();
    let hooks = report.hooks().len();
    let elapsed_ms = crate::report::millis(report.elapsed());
    let exit_code = report.exit_code();
    let trigger = report.trigger().to_string();
    if report.deadline_passed() || report.main() == &MainOutcome::Abandoned {
        tracing::error!(
            trigger,
            hooks,
            failed,
            elapsed_ms,
            exit_code,
            "shutdown passed the global deadline"
        );
    } else if exit_code != 0 {
        tracing::warn!(
            trigger,
            hooks,
            failed,
            elapsed_ms,
            exit_code,
            "shutdown finished with errors"
        );
    } else {
        tracing::info!(trigger, hooks, elapsed_ms, exit_code, "shutdown complete");
    }
}
