//! The sequencer: runs hooks phase by phase in ascending `order`, the hooks
//! of one phase concurrently, each within its timeout and all within the
//! global deadline. It knows nothing of signals or processes, so it is
//! tested on virtual time.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::hook::{HookFuture, HookRunner};
use crate::lifecycle::scoped;
use crate::registry::{Hooks, Names};
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
    /// How many times the sequencer looked at its phases' hooks.
    #[cfg(test)]
    turns: usize,
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
    names: Names,
    /// The hooks the sequencer has collected as ended.
    ended: Vec<bool>,
    /// What the phase's starters share: hooks that ended but that the
    /// sequencer has not collected yet (it may be stuck behind a hook that
    /// blocks its thread) are found there.
    shared: Option<Arc<Shared>>,
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
    fn set_phase(&self, order: i32, names: Names, shared: Option<Arc<Shared>>) {
        let ended = vec![false; names.len()];
        let old = std::mem::replace(
            &mut *lock(&self.running),
            Running {
                order,
                started: shared.as_ref().map(|shared| shared.started),
                names,
                ended,
                shared,
            },
        );
        // Freed outside the lock.
        drop(old);
    }

    /// The hooks of the current phase that have not ended, with their
    /// order and how long they have run.
    pub(crate) fn still_running(&self) -> Vec<StillRunning> {
        let running = lock(&self.running);
        let elapsed = running.started.map_or(Duration::ZERO, |at| at.elapsed());
        let mut ended = running.ended.clone();
        if let Some(shared) = &running.shared {
            shared.uncollected(|index| {
                if let Some(ended) = ended.get_mut(index) {
                    *ended = true;
                }
            });
            // Not begun is not running.
            let claimed = shared.next.load(Ordering::Acquire).min(shared.end) - shared.first;
            ended
                .iter_mut()
                .skip(claimed)
                .for_each(|ended| *ended = true);
        }
        ended
            .iter()
            .enumerate()
            .filter(|(_, ended)| !**ended)
            .filter_map(|(index, _)| running.names.get(index))
            .map(|(name, timeout)| StillRunning {
                name,
                order: running.order,
                timeout,
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
        self.still_running()
            .into_iter()
            .map(|hook| hook.name)
            .collect()
    }
}

/// A phase of at most this many hooks logs each of them at INFO; a larger
/// one logs one INFO line for the phase, and its hooks that ended ok at
/// DEBUG, except the slow ones (see [`slow`]). A hook that did not end ok
/// is logged at WARN or ERROR in any phase. So a shutdown's INFO log grows
/// with its phases, not with its hooks.
pub(crate) const FEW_HOOKS: usize = 8;

/// A hook with no timeout of its own is slow from this long.
const SLOW_WITHOUT_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether a hook ran longer than its share: past half its own timeout,
/// or, with none, past [`SLOW_WITHOUT_TIMEOUT`]. A slow hook that ended
/// ok is logged at INFO even in a large phase.
fn slow(hook: &HookReport) -> bool {
    hook.elapsed()
        >= hook
            .timeout()
            .map_or(SLOW_WITHOUT_TIMEOUT, |timeout| timeout / 2)
}

/// Logs a hook that ended, or was not run; `few` when its phase has at
/// most [`FEW_HOOKS`] hooks.
fn log(hook: &HookReport, few: bool) {
    if hook.outcome().is_success() && !few && !slow(hook) {
        if tracing::enabled!(tracing::Level::DEBUG) {
            log_hook(hook, tracing::Level::DEBUG);
        }
    } else {
        log_hook(hook, tracing::Level::INFO);
    }
}

/// Logs a hook at its outcome's level: `ok_level` when it ended ok.
fn log_hook(hook: &HookReport, ok_level: tracing::Level) {
    let elapsed_ms = crate::report::millis(hook.elapsed());
    let (name, order, outcome) = (&*hook.name, hook.order, hook.outcome().as_str());
    let detail = hook.detail();
    // A level is part of a callsite: one line, written at each of two.
    macro_rules! hook_finished {
        ($level:expr) => {
            tracing::event!(
                $level,
                hook = name,
                order,
                elapsed_ms,
                outcome,
                detail,
                "hook finished"
            )
        };
    }
    match hook.outcome() {
        Outcome::Ok if ok_level == tracing::Level::DEBUG => hook_finished!(tracing::Level::DEBUG),
        Outcome::Ok => hook_finished!(tracing::Level::INFO),
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
                .detail()
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
            timeout_ms = hook.timeout().map(|t| t.as_millis() as u64),
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

/// Runs `hooks` (in `(order, name)` order, as the registry hands them
/// over) phase by phase; `deadline` bounds the whole. Each hook's report is
/// in place from the start (as `not run`) and filled in when it ends.
pub(crate) async fn run(
    hooks: impl Into<Hooks>,
    deadline: Instant,
    progress: &Progress,
) -> SequenceOutcome {
    let hooks = Arc::new(hooks.into());
    let phases = hooks.phases().to_vec();
    let mut reports = (!hooks.reports_to_make()).then(|| hooks.reports());
    let mut deadline_passed = false;
    #[cfg(test)]
    let mut turns = 0;
    for (order, phase) in phases {
        if deadline_passed || Instant::now() >= deadline {
            deadline_passed = true;
            let reports = reports.get_or_insert_with(|| hooks.reports());
            let _batch = crate::logging::batch();
            let few = phase.len() <= FEW_HOOKS;
            reports[phase].iter().for_each(|report| log(report, few));
            continue;
        }
        let began = Began::new(&hooks, phase.clone(), deadline);
        // Made while the first phase's hooks already start on a worker:
        // 10,000 reports take as long as starting a third of the hooks.
        let reports = reports.get_or_insert_with(|| hooks.reports());
        progress.set_phase(
            order,
            hooks.names(phase.clone(), &reports[phase.clone()]),
            Some(Arc::clone(&began.shared)),
        );
        let phase = Phase {
            order,
            reports: &mut reports[phase],
        };
        #[cfg(test)]
        let shared = Arc::clone(&began.shared);
        deadline_passed |= run_phase(phase, began, progress).await;
        #[cfg(test)]
        {
            turns += shared.turns.load(Ordering::Relaxed);
        }
    }
    progress.set_phase(0, Names::None, None);
    SequenceOutcome {
        hooks: reports.unwrap_or_else(|| hooks.reports()),
        deadline_passed,
        #[cfg(test)]
        turns,
    }
}

/// One phase: the hooks of one `order`.
struct Phase<'a> {
    order: i32,
    /// The phase's reports, `not run` until each hook ends.
    reports: &'a mut [HookReport],
}

/// A phase whose hooks have begun to start: what its starters share, and
/// the first starter.
struct Began {
    shared: Arc<Shared>,
    starter: Starter,
}

impl Began {
    /// Starts the hooks `phase` of `hooks`.
    fn new(hooks: &Arc<Hooks>, phase: Range<usize>, deadline: Instant) -> Self {
        let shared = Arc::new(Shared {
            hooks: Arc::clone(hooks),
            first: phase.start,
            end: phase.end,
            next: AtomicUsize::new(phase.start),
            started: Instant::now(),
            deadline,
            finished: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            starters: Mutex::new(Vec::new()),
            starter_tasks: Mutex::new(Vec::new()),
            abandoned: AtomicBool::new(false),
            watch: Notify::new(),
            #[cfg(test)]
            turns: AtomicUsize::new(0),
        });
        let starter = spawn_starter(&shared);
        Self { shared, starter }
    }
}

/// How a hook of the phase ended: its index in the phase, its outcome
/// (`None` for ok: most are), and how long it ran, from its own start.
struct Finished {
    index: u32,
    failure: Option<Box<Outcome>>,
    elapsed: Duration,
}

impl Finished {
    fn new(index: usize, outcome: Outcome, elapsed: Duration) -> Self {
        Self {
            // A phase has far fewer than 2^32 hooks.
            index: index as u32,
            failure: (!outcome.is_success()).then(|| Box::new(outcome)),
            elapsed,
        }
    }
}

/// What the starters of a phase share with the sequencer.
struct Shared {
    hooks: Arc<Hooks>,
    /// The phase's hooks in the sequence: `first..end`.
    first: usize,
    end: usize,
    /// The next hook to start: each starter claims one at a time.
    next: AtomicUsize,
    started: Instant,
    deadline: Instant,
    /// Hooks that ended in tasks of their own.
    finished: Mutex<Vec<Finished>>,
    /// The tasks of hooks still pending after their first poll: index in
    /// the phase, since when the hook runs, and the task.
    tasks: Mutex<Vec<(usize, Instant, AbortHandle)>>,
    /// The starters' states.
    starters: Mutex<Vec<Arc<Mutex<Starting>>>>,
    /// The starters' tasks, for [`Abandon`].
    starter_tasks: Mutex<Vec<AbortHandle>>,
    /// Set by [`Abandon`] under the `tasks` lock: a hook task a starter
    /// spawns after that is aborted at once, not listed.
    abandoned: AtomicBool,
    /// Wakes the sequencer: a hook ended in its task, a starter ran out of
    /// hooks, or a first poll with a limit began.
    watch: Notify,
    /// The sequencer's turns in the phase.
    #[cfg(test)]
    turns: AtomicUsize,
}

impl Shared {
    /// Hook `index` of the phase's own limit, if it ends before the
    /// deadline, for a start at `since`.
    fn limit(&self, index: usize, since: Instant) -> Option<Instant> {
        self.hooks
            .timeout(self.first + index)
            // A timeout past what the clock can hold is no limit (the
            // builder does not bound it as the attribute does).
            .and_then(|timeout| since.checked_add(timeout))
            .filter(|limit| *limit < self.deadline)
    }

    /// Whether hooks are left to start.
    fn unclaimed(&self) -> bool {
        self.next.load(Ordering::Acquire) < self.end
    }

    /// Calls `ended` with the index of each hook that ended and has not
    /// been collected by the sequencer yet.
    fn uncollected(&self, mut ended: impl FnMut(usize)) {
        lock(&self.finished)
            .iter()
            .for_each(|finished| ended(finished.index as usize));
        for state in lock(&self.starters).iter() {
            lock(state)
                .done
                .iter()
                .for_each(|finished| ended(finished.index as usize));
        }
    }

    /// Hands out no more hooks; returns how many of the phase were
    /// claimed (started, or about to be).
    fn close(&self) -> usize {
        self.next.swap(self.end, Ordering::AcqRel).min(self.end) - self.first
    }
}

/// A starter's state: the hook it is polling for the first time (its index
/// in the phase, since when), and the hooks it finished, not yet collected.
#[derive(Default)]
struct Starting {
    polling: Option<(usize, Instant)>,
    done: Vec<Finished>,
}

/// A starter: its state, and its task.
type Starter = (Arc<Mutex<Starting>>, AbortHandle);

/// How many finished hooks a starter gathers before it wakes the
/// sequencer to collect them.
const HAND_OVER: usize = 512;

/// A first poll this long gets a second starter for the rest of the phase,
/// so that one hook blocking its thread does not hold the others back.
const SLOW_FIRST_POLL: Duration = Duration::from_millis(20);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts hooks of a phase one after the other, each polled once in place
/// (most finish at once and never need a task of their own); a pending one
/// gets a task. Runs as a task of its own so that a hook that blocks its
/// thread in that first poll cannot stop the sequencer, which abandons it
/// at its timeout and lets another starter go on. Starters claim hooks
/// from one counter, so the one that goes on takes the hooks left.
fn spawn_starter(shared: &Arc<Shared>) -> Starter {
    let state = Arc::new(Mutex::new(Starting::default()));
    lock(&shared.starters).push(Arc::clone(&state));
    let tasks = Arc::clone(shared);
    let (shared, mine) = (Arc::clone(shared), Arc::clone(&state));
    // Hooks run as part of the lifecycle that runs the sequence, also on
    // another worker thread.
    let lifecycle = crate::lifecycle::current();
    let starter = tokio::spawn(scoped(&lifecycle.clone(), async move {
        // One clock reading a hook: the end of one first poll is the start
        // of the next.
        let mut now = Instant::now();
        // The last hook's end, told with the next one's start: one lock a
        // hook.
        let mut ended = None;
        loop {
            // Past the deadline nothing more begins: the rest is `not run`.
            if now >= shared.deadline {
                break;
            }
            let claimed = shared.next.fetch_add(1, Ordering::AcqRel);
            if claimed >= shared.end {
                break;
            }
            let index = claimed - shared.first;
            let Some(runner) = shared.hooks.runner(claimed) else {
                continue;
            };
            let handed = {
                let mut state = lock(&mine);
                state.done.extend(ended.take());
                state.polling = Some((index, now));
                state.done.len() >= HAND_OVER
            };
            if handed {
                // Collected a batch at a time, so that the lists stay
                // small and reused: 10,000 results gathered in one list
                // cost the shutdown their page faults and copies.
                shared.watch.notify_one();
            }
            let since = now;
            let limit = shared.limit(index, since);
            if limit.is_some() {
                // The sequencer times this first poll.
                shared.watch.notify_one();
            }
            let first = start(runner);
            now = Instant::now();
            match first {
                // Collected without waking the sequencer for each.
                Ok(outcome) => ended = Some(Finished::new(index, outcome, now - since)),
                Err(future) => {
                    let task_shared = Arc::clone(&shared);
                    let task = tokio::spawn(scoped(&lifecycle, async move {
                        let outcome = finish(future, limit).await;
                        let elapsed = since.elapsed();
                        lock(&task_shared.finished).push(Finished::new(index, outcome, elapsed));
                        task_shared.watch.notify_one();
                    }));
                    // A starter in a first poll when the phase was
                    // abandoned (a reload dropped for a shutdown) comes
                    // here after the sweep: its hook must not go on.
                    let mut tasks = lock(&shared.tasks);
                    if shared.abandoned.load(Ordering::Acquire) {
                        task.abort();
                    } else {
                        tasks.push((index, since, task.abort_handle()));
                    }
                }
            }
        }
        {
            let mut state = lock(&mine);
            state.done.extend(ended);
            state.polling = None;
        }
        shared.watch.notify_one();
    }));
    lock(&tasks.starter_tasks).push(starter.abort_handle());
    (state, starter.abort_handle())
}

/// Ends a phase's tasks however its sequencer ends: also when the sequence
/// is dropped mid-phase (a reload abandoned for a shutdown), so that no
/// hook of it runs on beside what comes next.
struct Abandon(Arc<Shared>);

impl Drop for Abandon {
    fn drop(&mut self) {
        let shared = &self.0;
        shared.close();
        let tasks = lock(&shared.tasks);
        shared.abandoned.store(true, Ordering::Release);
        tasks.iter().for_each(|(_, _, task)| task.abort());
        drop(tasks);
        lock(&shared.starter_tasks)
            .iter()
            .for_each(AbortHandle::abort);
    }
}

/// The first polls the starters are in right now: index, since.
fn first_polls(starters: &[Starter]) -> Vec<(usize, Instant)> {
    starters
        .iter()
        .filter_map(|(state, _)| lock(state).polling)
        .collect()
}

/// Runs the hooks of one phase concurrently and fills in their reports.
/// Returns whether the global deadline cut it short.
async fn run_phase(phase: Phase<'_>, began: Began, progress: &Progress) -> bool {
    let Phase { order, reports } = phase;
    let Began { shared, starter } = began;
    let _abandon = Abandon(Arc::clone(&shared));
    let (started, deadline, first) = (shared.started, shared.deadline, shared.first);
    let few = reports.len() <= FEW_HOOKS;
    tracing::debug!(order, hooks = reports.len(), "phase started");
    let mut done = vec![false; reports.len()];
    let mut left = reports.len();
    // One starter to begin with: two that claim the hooks of one phase
    // side by side were slower than one (with 10,000 no-op hooks, 1.75 ms
    // each against 1.1 ms alone), the claims' counter going back and forth
    // between their cores.
    let mut starters = vec![starter];
    let deadline_timer = tokio::time::sleep_until(deadline);
    tokio::pin!(deadline_timer);
    let mut deadline_passed = false;
    let mut helped = vec![false; done.len()];
    let mut ends = Vec::new();
    // Reused from turn to turn, as the starters' own lists are: what a
    // turn collects is moved, never allocated afresh.
    let mut batch = Vec::new();
    while left > 0 {
        #[cfg(test)]
        shared.turns.fetch_add(1, Ordering::Relaxed);
        // When to look at the first polls in progress again: at a limit, or
        // when one has been slow long enough to need a second starter. A
        // first poll whose hook has timed out is left to block its thread:
        // its limit is behind, and waking for it again would spin.
        let polls: Vec<_> = first_polls(&starters)
            .into_iter()
            .filter(|(index, _)| !done[*index])
            .collect();
        let mut wake = polls
            .iter()
            .flat_map(|(index, since)| {
                let slow = (!helped[*index]).then(|| *since + SLOW_FIRST_POLL);
                [shared.limit(*index, *since), slow]
            })
            .flatten()
            .min();
        if polls.is_empty() && shared.unclaimed() {
            // The starters have not begun: look again shortly.
            wake = Some(Instant::now() + SLOW_FIRST_POLL);
        }
        tokio::select! {
            biased;
            () = shared.watch.notified() => {}
            () = tokio::time::sleep_until(wake.unwrap_or(deadline)), if wake.is_some() => {
                let now = Instant::now();
                for (index, since) in first_polls(&starters) {
                    if done[index] {
                        continue;
                    }
                    let timed_out = shared.limit(index, since).is_some_and(|limit| limit <= now);
                    if timed_out {
                        ends.push(Finished::new(index, Outcome::TimedOut, now - since));
                    }
                    if !helped[index] && (timed_out || since + SLOW_FIRST_POLL <= now) {
                        helped[index] = true;
                        starters.push(spawn_starter(&shared));
                    }
                }
            }
            // Not a break: the hooks that ended by now are collected first,
            // and reported as they ended, not as cut.
            () = &mut deadline_timer => deadline_passed = true,
        }
        // Moved into the reused batch: each list keeps its room for the
        // next turn.
        batch.append(&mut lock(&shared.finished));
        for (state, _) in &starters {
            batch.append(&mut lock(state).done);
        }
        batch.append(&mut ends);
        progress.ended(batch.iter().map(|finished| finished.index as usize));
        // The batch's lines go to stderr in one write.
        let _log = crate::logging::batch();
        for finished in batch.drain(..) {
            let index = finished.index as usize;
            if done[index] {
                continue;
            }
            done[index] = true;
            left -= 1;
            let report = &mut reports[index];
            report.set_outcome(finished.failure.map_or(Outcome::Ok, |failure| *failure));
            report.set_elapsed(finished.elapsed);
            report.set_detail(shared.hooks.detail(first + index));
            log(report, few);
        }
        if deadline_passed {
            break;
        }
    }
    // What is left is abandoned: hook tasks past the deadline, and starters
    // (idle by now, or stuck in a hook that never returns).
    let claimed = shared.close();
    // When each hook cut short began: only needed when some were.
    let mut since = if deadline_passed {
        vec![None; done.len()]
    } else {
        Vec::new()
    };
    for (index, at, task) in lock(&shared.tasks).iter() {
        if let Some(since) = since.get_mut(*index) {
            *since = Some(*at);
        }
        task.abort();
    }
    for (state, starter) in &starters {
        if let Some((index, at)) = lock(state).polling {
            if let Some(since) = since.get_mut(index) {
                *since = Some(at);
            }
        }
        starter.abort();
    }
    if deadline_passed {
        let now = Instant::now();
        let _log = crate::logging::batch();
        for (index, _) in done.iter().enumerate().filter(|(_, done)| !**done) {
            let report = &mut reports[index];
            if index >= claimed {
                // Never started: its report stays `not run`.
                log(report, few);
                continue;
            }
            report.set_outcome(Outcome::TimedOut);
            // A hook claimed but not seen starting began at most this long
            // ago.
            report.set_elapsed(now - since[index].unwrap_or(started));
            // Not its own timeout: the table and the JSON say which.
            report.set_detail(Some(CUT_BY_DEADLINE.to_owned()));
            log(report, few);
        }
    }
    log_phase(order, reports, started.elapsed());
    deadline_passed
}

/// The phase's line: at INFO for a phase of more than [`FEW_HOOKS`] hooks
/// (whose hooks that ended ok are at DEBUG), at DEBUG otherwise (each hook
/// has had its INFO line).
fn log_phase(order: i32, reports: &[HookReport], elapsed: Duration) {
    let few = reports.len() <= FEW_HOOKS;
    if few && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let hooks = reports.len();
    let ok = reports
        .iter()
        .filter(|report| report.outcome().is_success())
        .count();
    let elapsed_ms = crate::report::millis(elapsed);
    let slowest = reports.iter().max_by_key(|report| report.elapsed());
    let slowest_ms = slowest.map(|report| crate::report::millis(report.elapsed()));
    let slowest = slowest.map(|report| &*report.name);
    // As `hook_finished!` in `log_hook`.
    macro_rules! phase_finished {
        ($level:expr) => {
            tracing::event!(
                $level,
                order,
                hooks,
                ok,
                elapsed_ms,
                slowest,
                slowest_ms,
                "phase finished"
            )
        };
    }
    if few {
        phase_finished!(tracing::Level::DEBUG);
    } else {
        phase_finished!(tracing::Level::INFO);
    }
}

#[cfg(test)]
#[path = "sequence_properties.rs"]
mod properties;

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::hook::{Hook, HookKind, HookMeta, HookRunner};
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
                crate::hook::HookFuture::new(async move {
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
            .map(|hook| (hook.name.to_string(), hook.outcome().as_str().to_owned()))
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
        assert_eq!(outcome.hooks[2].elapsed(), Duration::from_millis(100));
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
        assert_eq!(outcome.hooks[1].elapsed(), Duration::from_millis(200));
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
        assert_eq!(outcome.hooks[1].elapsed(), Duration::from_millis(600));
        assert_eq!(outcome.hooks[2].elapsed(), Duration::ZERO);
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
        assert_eq!(
            *outcome.hooks[0].outcome(),
            Outcome::Error("disk full".into())
        );
        assert_eq!(
            *outcome.hooks[2].outcome(),
            Outcome::Panicked("hook exploded".into())
        );
        assert_eq!(*outcome.hooks[1].outcome(), Outcome::Ok);
        assert_eq!(*outcome.hooks[3].outcome(), Outcome::Ok);
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
        assert_eq!(*outcome.hooks[0].outcome(), Outcome::Ok);
        assert_eq!(
            *outcome.hooks[1].outcome(),
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

    /// A hook that ends in its first poll (`sleep_ms(0)` does not).
    fn instant() -> std::future::Ready<Result<(), crate::error::BoxError>> {
        std::future::ready(Ok(()))
    }

    /// A hook that blocks its thread for `ms` in its first poll.
    async fn block_ms(ms: u64) -> Result<(), crate::error::BoxError> {
        std::thread::sleep(Duration::from_millis(ms));
        Ok(())
    }

    #[tokio::test(flavor = "current_thread")]
    async fn each_hook_is_timed_from_its_own_start() {
        // On one thread the starter runs these first polls back to back:
        // timed from the phase's start, the 30th hook would have run 30 ms.
        let journal = Journal::default();
        let hooks = (0..30)
            .map(|n| hook(&format!("h{n:02}"), 0, None, &journal, block_ms(1)))
            .collect();
        let began = std::time::Instant::now();
        let outcome = run(registry::sort(hooks), deadline_in(60), &Progress::default()).await;
        let wall = began.elapsed();
        // One after the other, so their times add up to at most the run's.
        let total: Duration = outcome.hooks.iter().map(HookReport::elapsed).sum();
        assert!(total <= wall, "{total:?} of hooks in a run of {wall:?}");
        assert!(outcome.hooks.iter().all(|hook| hook.outcome().is_success()));
    }

    #[test]
    fn hooks_that_ended_are_not_named_running_while_one_blocks_the_only_thread() {
        let journal = Journal::default();
        let (started, has_started) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let hooks = vec![
            hook("a_quick", 0, None, &journal, instant()),
            hook("b_blocks", 0, None, &journal, async move {
                let _ = started.send(());
                let _ = released.recv();
                Ok(())
            }),
            hook("c_after", 0, None, &journal, instant()),
        ];
        let progress = Progress::default();
        let watched = progress.clone();
        let sequence = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async { run(registry::sort(hooks), deadline_in(60), &watched).await })
        });
        has_started
            .recv_timeout(Duration::from_secs(30))
            .expect("b_blocks starts");
        // The sequencer cannot run: the watchdog's view comes from the
        // starter's own record.
        let running = progress.running();
        release.send(()).unwrap();
        let outcome = sequence.join().unwrap();
        // a_quick ended, c_after has not begun: neither is running.
        assert_eq!(running, ["b_blocks"]);
        assert!(outcome.hooks.iter().all(|hook| hook.outcome().is_success()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_the_deadline_hooks_are_reported_as_they_ended_ran_or_never_began() {
        let journal = Journal::default();
        let deadline = Instant::now() + Duration::from_millis(10);
        let blocks_past_deadline = async move {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
            std::thread::sleep(Duration::from_millis(100));
            Ok(())
        };
        let hooks = vec![
            hook("a_quick", 0, None, &journal, instant()),
            hook("b_blocks", 0, None, &journal, blocks_past_deadline),
            hook("c_later", 0, None, &journal, instant()),
            hook("d_later", 0, None, &journal, instant()),
        ];
        let outcome = run(registry::sort(hooks), deadline, &Progress::default()).await;
        assert!(outcome.deadline_passed);
        let [a, b, c, d] = &outcome.hooks[..] else {
            panic!("four reports")
        };
        let cut = |hook: &HookReport| {
            *hook.outcome() == Outcome::TimedOut && hook.detail() == Some(CUT_BY_DEADLINE)
        };
        // On a machine loaded enough to hold the starter back past the
        // deadline, nothing began: all are `not run`.
        assert!(cut(b) || *b.outcome() == Outcome::NotRun, "{b:?}");
        if cut(b) {
            // It began after a_quick had ended.
            assert_eq!(*a.outcome(), Outcome::Ok);
        }
        for later in [c, d] {
            // Never begun (or begun by a second starter and ended, on a
            // machine that held the sequencer back).
            assert!(
                matches!(later.outcome(), Outcome::NotRun | Outcome::Ok),
                "{later:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hook_blocking_past_its_timeout_does_not_spin_the_sequencer() {
        let journal = Journal::default();
        let hooks = vec![
            // Abandoned at 50 ms while it still blocks its thread; the
            // sequencer then waits for b_pending, which ends at 300 ms.
            hook("a_blocks", 0, Some(50), &journal, block_ms(400)),
            hook("b_pending", 0, None, &journal, sleep_ms(300)),
        ];
        let outcome = run(registry::sort(hooks), deadline_in(60), &Progress::default()).await;
        assert_eq!(
            outcomes(&outcome),
            [
                ("a_blocks".into(), "timed out".into()),
                ("b_pending".into(), "ok".into())
            ]
        );
        // A turn for each thing that happened (a start, a slow first poll,
        // the timeout, an end), not thousands while a_blocks blocks.
        assert!(outcome.turns < 50, "{} turns", outcome.turns);
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
