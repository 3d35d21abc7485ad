//! The sequencer: runs hooks phase by phase in ascending `order`, the hooks
//! of one phase concurrently, each within its timeout and all within the
//! global deadline. It knows nothing of signals or processes, so it is
//! tested on virtual time.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::collections::VecDeque;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::hook::{DetailSlot, Hook, HookFuture, HookRunner};
use crate::lifecycle::scoped;
use crate::report::{HookReport, Outcome, outcome_of};
use crate::unwind::{CatchUnwind, poll_once};

/// The detail of a hook the global deadline cut short (its outcome is
/// `timed out`, but not by its own timeout).
const CUT_BY_DEADLINE: &str = "cut by the global deadline";

/// What the sequencer did.
#[derive(Debug)]
pub(crate) struct SequenceOutcome {
    pub(crate) hooks: Vec<HookReport>,
    pub(crate) deadline_passed: bool,
}

/// The hooks still running, for the watchdog to name if the deadline
/// passes while the runtime is stuck.
#[derive(Clone, Default)]
pub(crate) struct Progress {
    running: Arc<Mutex<Running>>,
}

/// The current phase's hooks, and which of them have ended.
#[derive(Default)]
struct Running {
    order: i32,
    started: Option<Instant>,
    names: Vec<Cow<'static, str>>,
    timeouts: Vec<Option<Duration>>,
    ended: Vec<bool>,
}

/// A hook still running when the process must end: for the report the
/// watchdog writes.
pub(crate) struct StillRunning {
    pub(crate) name: Cow<'static, str>,
    pub(crate) order: i32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) elapsed: Duration,
}

impl Progress {
    fn set_phase(&self, order: i32, hooks: &[HookReport]) {
        *lock(&self.running) = Running {
            order,
            started: Some(Instant::now()),
            names: hooks.iter().map(|hook| hook.name.clone()).collect(),
            timeouts: hooks.iter().map(|hook| hook.timeout).collect(),
            ended: vec![false; hooks.len()],
        };
    }

    /// The hooks of the current phase that have not ended, with their
    /// order and how long they have run.
    pub(crate) fn still_running(&self) -> Vec<StillRunning> {
        let running = lock(&self.running);
        let elapsed = running.started.map_or(Duration::ZERO, |at| at.elapsed());
        running
            .names
            .iter()
            .zip(&running.timeouts)
            .zip(&running.ended)
            .filter(|(_, ended)| !**ended)
            .map(|((name, timeout), _)| StillRunning {
                name: name.clone(),
                order: running.order,
                timeout: *timeout,
                elapsed,
            })
            .collect()
    }

    /// Marks the hooks at these indices of the phase as ended.
    fn ended(&self, indices: impl Iterator<Item = usize>) {
        let mut running = lock(&self.running);
        for index in indices {
            if let Some(ended) = running.ended.get_mut(index) {
                *ended = true;
            }
        }
    }

    /// The names of the hooks of the current phase that have not ended.
    pub(crate) fn running(&self) -> Vec<Cow<'static, str>> {
        let running = lock(&self.running);
        running
            .names
            .iter()
            .zip(&running.ended)
            .filter(|(_, ended)| !**ended)
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn log(hook: &HookReport) {
    let elapsed_ms = crate::report::millis(hook.elapsed);
    let (name, order, outcome) = (&*hook.name, hook.order, hook.outcome.as_str());
    match &hook.outcome {
        Outcome::Ok => match &hook.detail {
            Some(detail) => tracing::info!(
                hook = name,
                order,
                elapsed_ms,
                outcome,
                detail = detail.as_str(),
                "hook finished"
            ),
            None => tracing::info!(hook = name, order, elapsed_ms, outcome, "hook finished"),
        },
        Outcome::Error(error) | Outcome::Panicked(error) => {
            tracing::warn!(
                hook = name,
                order,
                elapsed_ms,
                outcome,
                error = error.as_str(),
                "hook failed"
            );
        }
        Outcome::TimedOut
            if hook
                .detail
                .as_deref()
                .is_some_and(|detail| detail.ends_with(CUT_BY_DEADLINE)) =>
        {
            tracing::error!(
                hook = name,
                order,
                elapsed_ms,
                outcome,
                "hook abandoned: the global deadline passed while it ran"
            )
        }
        Outcome::TimedOut => tracing::error!(
            hook = name,
            order,
            elapsed_ms,
            outcome,
            timeout_ms = hook.timeout.map(|t| t.as_millis() as u64),
            "hook passed its timeout and was abandoned"
        ),
        Outcome::NotRun => tracing::error!(
            hook = name,
            order,
            outcome,
            "hook not run: global deadline passed"
        ),
    }
}

/// Starts a hook and polls it once, in place: most hooks (no-ops, quick
/// flushes) finish at once and never need a task of their own. A pending
/// hook is handed back to be spawned.
fn start(runner: HookRunner) -> Result<Outcome, HookFuture> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.start())) {
        Ok(future) => poll_once(future).map(outcome_of),
        Err(payload) => Ok(outcome_of(Err(payload))),
    }
}

/// Drives a started hook to its end within `limit` (its own timeout).
async fn finish(future: HookFuture, limit: Option<Instant>) -> Outcome {
    let running = CatchUnwind::new(future);
    let finished = match limit {
        Some(limit) => match tokio::time::timeout_at(limit, running).await {
            Ok(finished) => finished,
            Err(_) => return Outcome::TimedOut,
        },
        None => running.await,
    };
    outcome_of(finished)
}

/// Runs `hooks`, sorted by `(order, name)` as the registry hands them
/// over, phase by phase; `deadline` bounds the whole. The hooks go
/// straight to their reports and runners, with no list between.
pub(crate) async fn run(
    hooks: impl IntoIterator<Item = Hook>,
    deadline: Instant,
    progress: &Progress,
) -> SequenceOutcome {
    // Each hook's report is in place from the start (as `not run`) and
    // filled in when it ends: no second list to keep in step.
    let hooks = hooks.into_iter();
    let mut reports = Vec::with_capacity(hooks.size_hint().0);
    let mut runners = VecDeque::with_capacity(hooks.size_hint().0);
    // Few hooks leave a detail (a child's stop): kept by index, not a slot
    // per hook.
    let mut details = Vec::new();
    for hook in hooks {
        if let Some(slot) = &hook.meta.detail {
            details.push((reports.len(), slot.clone()));
        }
        runners.push_back((hook.runner, hook.meta.timeout));
        reports.push(HookReport::not_run(hook.meta));
    }
    debug_assert!(
        reports.is_sorted_by_key(|report| report.order),
        "sequence::run wants hooks sorted"
    );
    let mut deadline_passed = false;
    let mut first = 0;
    while first < reports.len() {
        let order = reports[first].order;
        let len = reports[first..]
            .iter()
            .take_while(|report| report.order == order)
            .count();
        let phase = first..first + len;
        // The last (often the only) phase takes the runners as they are.
        let to_start = if len == runners.len() {
            std::mem::take(&mut runners)
        } else {
            runners.drain(..len).collect()
        };
        if deadline_passed || Instant::now() >= deadline {
            deadline_passed = true;
            reports[phase].iter().for_each(log);
        } else {
            let details = details
                .iter()
                .filter(|(index, _)| phase.contains(index))
                .map(|(index, slot)| (index - first, slot.clone()))
                .collect();
            let phase = Phase {
                order,
                to_start,
                details,
                reports: &mut reports[phase],
            };
            deadline_passed |= run_phase(phase, deadline, progress).await;
        }
        first += len;
    }
    progress.set_phase(0, &[]);
    SequenceOutcome {
        hooks: reports,
        deadline_passed,
    }
}

/// A hook of a phase waiting to be started: how to run it, and its own
/// timeout.
type ToStart = (HookRunner, Option<Duration>);

/// The hooks of a phase not started yet, and the index in the phase of the
/// next one.
struct Queue {
    next: usize,
    hooks: VecDeque<ToStart>,
}

impl Queue {
    fn pop(&mut self) -> Option<(usize, HookRunner, Option<Duration>)> {
        let (runner, timeout) = self.hooks.pop_front()?;
        self.next += 1;
        Some((self.next - 1, runner, timeout))
    }
}

/// One phase: the hooks of one `order`.
struct Phase<'a> {
    order: i32,
    to_start: VecDeque<ToStart>,
    /// The hooks that leave a detail, by index in the phase.
    details: Vec<(usize, DetailSlot)>,
    /// The phase's reports, `not run` until each hook ends.
    reports: &'a mut [HookReport],
}

/// How a hook ended: its index in the phase, its outcome, when.
type Finished = (usize, Outcome, Duration);

/// The hook a starter is polling for the first time: its index, its limit,
/// and since when.
type Polling = Arc<Mutex<Option<(usize, Option<Instant>, Instant)>>>;

/// A first poll this long gets a second starter for the rest of the phase,
/// so that one hook blocking its thread does not hold the others back.
const SLOW_FIRST_POLL: Duration = Duration::from_millis(20);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts the hooks of a phase one after the other, each polled once in
/// place (most finish at once and never need a task of their own); a
/// pending one gets a task. Runs as a task of its own so that a hook that
/// blocks its thread in that first poll cannot stop the sequencer, which
/// abandons it at its timeout and lets another starter go on.
fn spawn_starter(
    queue: &Arc<Mutex<Queue>>,
    finished: &Arc<Mutex<Vec<Finished>>>,
    tasks: &Arc<Mutex<Vec<AbortHandle>>>,
    watch: &Arc<Notify>,
    (started, deadline): (Instant, Instant),
) -> (Polling, AbortHandle) {
    let polling = Polling::default();
    let (queue, finished, tasks, watch, current) = (
        queue.clone(),
        finished.clone(),
        tasks.clone(),
        watch.clone(),
        polling.clone(),
    );
    // Hooks run as part of the lifecycle that runs the sequence, also on
    // another worker thread.
    let lifecycle = crate::lifecycle::current();
    let starter = tokio::spawn(scoped(&lifecycle.clone(), async move {
        // One clock reading a hook: the end of one first poll is the start
        // of the next.
        let mut now = Instant::now();
        loop {
            let Some((index, runner, timeout)) = lock(&queue).pop() else {
                break;
            };
            // A hook's own timeout runs from its start; the deadline bounds
            // the phase as a whole, with one timer in the sequencer.
            let limit = timeout
                .map(|timeout| now + timeout)
                .filter(|limit| *limit < deadline);
            *lock(&current) = Some((index, limit, now));
            if limit.is_some() {
                // The sequencer times this first poll.
                watch.notify_one();
            }
            let first = start(runner);
            *lock(&current) = None;
            now = Instant::now();
            match first {
                // Collected without waking the sequencer for each.
                Ok(outcome) => lock(&finished).push((index, outcome, now - started)),
                Err(future) => {
                    let (finished, watch) = (finished.clone(), watch.clone());
                    let task = tokio::spawn(scoped(&lifecycle, async move {
                        let outcome = finish(future, limit).await;
                        lock(&finished).push((index, outcome, started.elapsed()));
                        watch.notify_one();
                    }));
                    lock(&tasks).push(task.abort_handle());
                }
            }
        }
        watch.notify_one();
    }));
    (polling, starter.abort_handle())
}

/// The first polls the starters are in right now.
fn first_polls(starters: &[(Polling, AbortHandle)]) -> Vec<(usize, Option<Instant>, Instant)> {
    starters
        .iter()
        .filter_map(|(polling, _)| *lock(polling))
        .collect()
}

/// Runs the hooks of one phase concurrently and fills in their reports.
/// Returns whether the global deadline cut it short.
async fn run_phase(phase: Phase<'_>, deadline: Instant, progress: &Progress) -> bool {
    let Phase {
        order,
        to_start,
        details,
        reports,
    } = phase;
    let started = Instant::now();
    tracing::debug!(order, hooks = reports.len(), "phase started");
    progress.set_phase(order, reports);
    let mut done = vec![false; reports.len()];
    let mut left = reports.len();
    let queue = Arc::new(Mutex::new(Queue {
        next: 0,
        hooks: to_start,
    }));
    let tasks = Arc::new(Mutex::new(Vec::new()));
    let finished = Arc::new(Mutex::new(Vec::with_capacity(left)));
    let watch = Arc::new(Notify::new());
    let mut starters = vec![spawn_starter(
        &queue,
        &finished,
        &tasks,
        &watch,
        (started, deadline),
    )];
    let deadline_timer = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline_timer);
    let mut deadline_passed = false;
    let mut helped = vec![false; done.len()];
    let mut ends = Vec::new();
    while left > 0 {
        // When to look at the first polls in progress again: at a limit, or
        // when one has been slow long enough to need a second starter.
        let polls = first_polls(&starters);
        let mut wake = polls
            .iter()
            .flat_map(|(index, limit, since)| {
                let slow = (!helped[*index]).then(|| *since + SLOW_FIRST_POLL);
                [*limit, slow]
            })
            .flatten()
            .min();
        if polls.is_empty() && !lock(&queue).hooks.is_empty() {
            // The starters have not begun: look again shortly.
            wake = Some(Instant::now() + SLOW_FIRST_POLL);
        }
        tokio::select! {
            biased;
            () = watch.notified() => {}
            () = tokio::time::sleep_until(wake.unwrap_or(deadline)), if wake.is_some() => {
                let now = Instant::now();
                for (index, limit, since) in first_polls(&starters) {
                    let timed_out = limit.is_some_and(|limit| limit <= now);
                    if timed_out {
                        ends.push((index, Outcome::TimedOut, started.elapsed()));
                    }
                    if !helped[index] && (timed_out || since + SLOW_FIRST_POLL <= now) {
                        helped[index] = true;
                        starters.push(spawn_starter(&queue, &finished, &tasks, &watch, (started, deadline)));
                    }
                }
            }
            () = &mut deadline_timer => {
                deadline_passed = true;
                break;
            }
        }
        // Taken whole, not copied: with 10,000 instant hooks this is one
        // batch of 10,000.
        let mut batch = std::mem::take(&mut *lock(&finished));
        batch.append(&mut ends);
        progress.ended(batch.iter().map(|(index, _, _)| *index));
        for (index, outcome, elapsed) in batch {
            if done[index] {
                continue;
            }
            done[index] = true;
            left -= 1;
            let report = &mut reports[index];
            report.outcome = outcome;
            report.elapsed = elapsed;
            if let Some((_, slot)) = details.iter().find(|(at, _)| *at == index) {
                report.detail = slot.get().cloned();
            }
            log(report);
        }
    }
    // What is left is abandoned: hook tasks past the deadline, and starters
    // (idle by now, or stuck in a hook that never returns).
    lock(&queue).hooks.clear();
    for task in lock(&tasks).iter().chain(starters.iter().map(|(_, s)| s)) {
        task.abort();
    }
    if deadline_passed {
        let elapsed = started.elapsed();
        for (index, _) in done.iter().enumerate().filter(|(_, done)| !**done) {
            let report = &mut reports[index];
            report.outcome = Outcome::TimedOut;
            report.elapsed = elapsed;
            // Not its own timeout: the table and the JSON say which.
            report.detail = Some(match report.detail.take() {
                Some(own) => format!("{own}; {CUT_BY_DEADLINE}"),
                None => CUT_BY_DEADLINE.to_owned(),
            });
            log(report);
        }
    }
    deadline_passed
}

#[cfg(test)]
#[path = "sequence_properties.rs"]
mod properties;

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::hook::{HookKind, HookMeta, HookRunner};
    use crate::registry;

    /// A log of what the hooks did, on virtual time.
    #[derive(Clone, Default)]
    struct Journal {
        events: Arc<Mutex<Vec<(Duration, String)>>>,
        start: Arc<Mutex<Option<Instant>>>,
    }

    impl Journal {
        fn note(&self, what: String) {
            let start = *self.start.lock().unwrap().get_or_insert_with(Instant::now);
            self.events.lock().unwrap().push((start.elapsed(), what));
        }

        fn events(&self) -> Vec<(u64, String)> {
            let events = self.events.lock().unwrap();
            events
                .iter()
                .map(|(at, what)| (at.as_millis() as u64, what.clone()))
                .collect()
        }
    }

    fn hook<F>(name: &str, order: i32, timeout_ms: Option<u64>, journal: &Journal, body: F) -> Hook
    where
        F: Future<Output = Result<(), crate::error::BoxError>> + Send + 'static,
    {
        let journal = journal.clone();
        let label = name.to_owned();
        Hook {
            meta: HookMeta {
                name: Cow::Owned(name.to_owned()),
                order,
                timeout: timeout_ms.map(Duration::from_millis),
                kind: HookKind::Builder,
                source: None,
                detail: None,
            },
            runner: HookRunner::Boxed(Box::new(move || {
                Box::pin(async move {
                    journal.note(format!("start {label}"));
                    let result = body.await;
                    journal.note(format!("end {label}"));
                    result
                })
            })),
        }
    }

    use std::future::Future;

    async fn sleep_ms(ms: u64) -> Result<(), crate::error::BoxError> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }

    fn outcomes(outcome: &SequenceOutcome) -> Vec<(String, String)> {
        outcome
            .hooks
            .iter()
            .map(|hook| (hook.name.to_string(), hook.outcome.as_str().to_owned()))
            .collect()
    }

    fn deadline_in(secs: u64) -> Instant {
        Instant::now() + Duration::from_secs(secs)
    }

    #[tokio::test(start_paused = true)]
    async fn phases_run_in_ascending_order_and_equal_orders_overlap() {
        let journal = Journal::default();
        let hooks = vec![
            hook("late", 2, None, &journal, sleep_ms(10)),
            hook("b", 1, None, &journal, sleep_ms(100)),
            hook("first", -5, None, &journal, sleep_ms(50)),
            hook("a", 1, None, &journal, sleep_ms(30)),
        ];
        let outcome = run(registry::sort(hooks), deadline_in(10), &Progress::default()).await;
        assert!(!outcome.deadline_passed);
        assert_eq!(
            journal.events(),
            vec![
                (0, "start first".into()),
                (50, "end first".into()),
                (50, "start a".into()),
                (50, "start b".into()),
                (80, "end a".into()),
                (150, "end b".into()),
                (150, "start late".into()),
                (160, "end late".into()),
            ]
        );
        let names: Vec<_> = outcome.hooks.iter().map(|h| &*h.name).collect();
        assert_eq!(names, ["first", "a", "b", "late"]);
        assert_eq!(outcome.hooks[2].elapsed, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hook_past_its_timeout_is_abandoned_and_the_sequence_goes_on() {
        let journal = Journal::default();
        let hooks = vec![
            hook("slow", 0, Some(200), &journal, sleep_ms(5_000)),
            hook("quick", 0, Some(200), &journal, sleep_ms(10)),
            hook("next", 1, None, &journal, sleep_ms(1)),
        ];
        let outcome = run(registry::sort(hooks), deadline_in(10), &Progress::default()).await;
        assert_eq!(
            outcomes(&outcome),
            [
                ("quick".into(), "ok".into()),
                ("slow".into(), "timed out".into()),
                ("next".into(), "ok".into())
            ]
        );
        assert_eq!(outcome.hooks[1].elapsed, Duration::from_millis(200));
        assert!(journal.events().contains(&(200, "start next".into())));
        assert!(!journal.events().iter().any(|(_, e)| e == "end slow"));
        assert!(!outcome.deadline_passed);
    }

    #[tokio::test(start_paused = true)]
    async fn progress_names_only_the_hooks_of_the_phase_still_running() {
        let journal = Journal::default();
        let hooks = vec![
            hook("done", 0, None, &journal, sleep_ms(0)),
            hook("early", 1, None, &journal, sleep_ms(10)),
            hook("stuck", 1, None, &journal, std::future::pending()),
            hook("later", 1, None, &journal, sleep_ms(10)),
        ];
        let progress = Progress::default();
        let watched = progress.clone();
        let sequence =
            tokio::spawn(
                async move { run(registry::sort(hooks), deadline_in(10), &watched).await },
            );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(progress.running(), ["early", "later", "stuck"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(progress.running(), ["stuck"]);
        sequence.abort();
        let _ = sequence.await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_deadline_cuts_the_phase_and_skips_the_rest() {
        let journal = Journal::default();
        let hooks = vec![
            hook("one", 0, None, &journal, sleep_ms(400)),
            hook("stuck", 1, Some(60_000), &journal, std::future::pending()),
            hook("never", 2, None, &journal, sleep_ms(1)),
        ];
        let start = Instant::now();
        let outcome = run(
            registry::sort(hooks),
            start + Duration::from_secs(1),
            &Progress::default(),
        )
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(outcome.deadline_passed);
        assert_eq!(
            outcomes(&outcome),
            [
                ("one".into(), "ok".into()),
                ("stuck".into(), "timed out".into()),
                ("never".into(), "not run".into())
            ]
        );
        assert_eq!(outcome.hooks[1].elapsed, Duration::from_millis(600));
        assert_eq!(outcome.hooks[2].elapsed, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn panics_and_errors_are_contained() {
        let journal = Journal::default();
        let hooks = vec![
            hook("panics", 0, None, &journal, async {
                panic!("hook exploded")
            }),
            hook("errs", 0, None, &journal, async {
                Err(std::io::Error::other("disk full").into())
            }),
            hook("fine", 0, None, &journal, sleep_ms(5)),
            hook("after", 1, None, &journal, sleep_ms(5)),
        ];
        let outcome = run(registry::sort(hooks), deadline_in(10), &Progress::default()).await;
        assert_eq!(outcome.hooks[0].outcome, Outcome::Error("disk full".into()));
        assert_eq!(
            outcome.hooks[2].outcome,
            Outcome::Panicked("hook exploded".into())
        );
        assert_eq!(outcome.hooks[1].outcome, Outcome::Ok);
        assert_eq!(outcome.hooks[3].outcome, Outcome::Ok);
    }

    static BLOCKING_RUNS: AtomicUsize = AtomicUsize::new(0);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocking_hooks_run_on_the_blocking_pool_and_their_panics_are_caught() {
        fn counts() -> Result<(), crate::error::BoxError> {
            BLOCKING_RUNS.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn panics() -> Result<(), crate::error::BoxError> {
            panic!("sync hook exploded")
        }
        let meta = |name: &str| HookMeta {
            name: Cow::Owned(name.to_owned()),
            order: 0,
            timeout: None,
            kind: HookKind::Blocking,
            source: None,
            detail: None,
        };
        let hooks = vec![
            Hook {
                meta: meta("counts"),
                runner: HookRunner::Blocking(counts),
            },
            Hook {
                meta: meta("panics"),
                runner: HookRunner::Blocking(panics),
            },
        ];
        let outcome = run(registry::sort(hooks), deadline_in(10), &Progress::default()).await;
        assert_eq!(BLOCKING_RUNS.load(Ordering::SeqCst), 1);
        assert_eq!(outcome.hooks[0].outcome, Outcome::Ok);
        assert_eq!(
            outcome.hooks[1].outcome,
            Outcome::Panicked("sync hook exploded".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_already_passed_runs_nothing() {
        let journal = Journal::default();
        let hooks = vec![hook("a", 0, None, &journal, sleep_ms(1))];
        let outcome = run(registry::sort(hooks), Instant::now(), &Progress::default()).await;
        assert!(outcome.deadline_passed);
        assert_eq!(outcomes(&outcome), [("a".into(), "not run".into())]);
        assert!(journal.events().is_empty());
    }

    #[test]
    fn error_chains_name_every_source() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("flush failed")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let err = Outer(std::io::Error::other("disk full"));
        assert_eq!(crate::report::error_chain(&err), "flush failed: disk full");
    }
}
