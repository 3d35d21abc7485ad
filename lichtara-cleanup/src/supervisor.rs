//! The supervisor: one OS thread with a small runtime of its own that turns
//! signals into the shutdown trigger and ends the process at a second
//! signal; and, for `#[lichtara::main]`, the watchdog: a thread of its own
//! that enforces the global deadline even when the application's runtime
//! is stuck (a blocked thread, a wedged task) or the log is (a full stderr
//! nobody reads blocks whichever thread writes to it, the supervisor's
//! too: the watchdog writes nothing itself).

use std::io;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::exit::{self, Ending};
use crate::lifecycle;
use crate::report::Trigger;
use crate::signal::Listener;

/// How long past the deadline the watchdog waits for the sequencer to end
/// on its own (and report properly) before it ends the process itself.
/// On a loaded machine the runtime took more than 100 ms to be scheduled
/// after the deadline and the report was lost; half a second stays well
/// inside the second systemd is told to allow past the deadline
/// (`systemd::extend_while_running`).
const WATCHDOG_GRACE: Duration = Duration::from_millis(500);

/// Signals this close to the one counted before them are the same request:
/// a signal sent to a process and to its group at once (a terminal's Ctrl-C
/// under a wrapper that forwards it, an init that signals both) arrives
/// twice, and must not count as the second signal that forces the exit.
const REPEAT_WINDOW: Duration = Duration::from_millis(100);

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

/// Starts the supervisor once per process and waits until its signal
/// handlers are registered. With `watchdog`, it ends the process with code
/// 124 when the sequence overruns the global deadline.
pub(crate) fn start(watchdog: bool) -> io::Result<()> {
    STARTED
        .get_or_init(|| spawn(watchdog).map_err(|err| err.to_string()))
        .clone()
        .map_err(io::Error::other)
}

/// When the watchdog ends the process (the deadline plus its grace), once
/// shutdown has begun; the watchdog thread waits for it.
static ARMED: (Mutex<Option<Instant>>, Condvar) = (Mutex::new(None), Condvar::new());

/// Arms the watchdog for a shutdown whose deadline is `deadline`: called
/// as shutdown begins, before anything is logged (a log line can block).
/// Without a watchdog (the builder's programs), nothing waits for it.
pub(crate) fn arm(deadline: Instant) {
    let (armed, wake) = &ARMED;
    *armed.lock().unwrap_or_else(PoisonError::into_inner) = Some(deadline + WATCHDOG_GRACE);
    wake.notify_all();
}

/// The watchdog thread: waits to be armed, then until its time, and ends
/// the process with 124 (or, when the sequence is over and its exit is
/// what is stuck, with that exit's code).
fn watch() {
    let (armed, wake) = &ARMED;
    let mut at = armed.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        match *at {
            Some(when) if Instant::now() >= when => break,
            Some(when) => {
                let left = when.saturating_duration_since(Instant::now());
                at = wake
                    .wait_timeout(at, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            None => at = wake.wait(at).unwrap_or_else(PoisonError::into_inner),
        }
    }
    drop(at);
    deadline_exit()
}

fn spawn(watchdog: bool) -> io::Result<()> {
    if watchdog {
        std::thread::Builder::new()
            .name("lichtara-watchdog".into())
            .spawn(watch)?;
    }
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("lichtara-supervisor".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match Listener::new() {
                    Ok(listener) => listener,
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                // Handlers first: a pending signal unblocked before them
                // would take its default action.
                #[cfg(unix)]
                accept_inherited_signals();
                // A signal that came before these handlers, from exec on.
                #[cfg(unix)]
                let early = crate::signal::early::take();
                #[cfg(not(unix))]
                let early = Vec::new();
                let _ = ready_tx.send(Ok(()));
                // Sort the hooks now, while nothing waits for them.
                crate::registry::prepare();
                supervise(listener, early).await;
            });
        })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the supervisor thread ended at startup")))
}

/// A process may start with the shutdown signals blocked (a parent's mask
/// is inherited across exec): unblocked in this thread, they are delivered
/// here — including one already pending — instead of waiting forever.
#[cfg(unix)]
fn accept_inherited_signals() {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(signal);
    }
    if let Ok(blocked) = SigSet::thread_get_mask() {
        if set.iter().any(|signal| blocked.contains(signal)) {
            tracing::debug!("shutdown signals were blocked at startup; unblocked for lichtara");
        }
    }
    let _ = set.thread_unblock();
}

/// Counts signals, taking repeats within [`REPEAT_WINDOW`] of the last
/// counted one as the same.
#[derive(Default)]
struct Count {
    counted: u32,
    last: Option<std::time::Instant>,
}

impl Count {
    /// Whether `signal` counts.
    fn counts(&mut self, signal: Trigger) -> bool {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < REPEAT_WINDOW)
        {
            tracing::debug!(signal = %signal, "repeated signal taken as the same request");
            return false;
        }
        self.counted += 1;
        self.last = Some(now);
        true
    }
}

/// Whether `signal` asks for a reload: SIGHUP, when reload hooks are
/// registered (without them it means "shut down", as it always did).
fn asks_reload(signal: Trigger) -> bool {
    matches!(signal, Trigger::Signal { name: "SIGHUP", .. }) && crate::reload::registered()
}

async fn supervise(mut listener: Listener, early: Vec<Trigger>) {
    let mut early = early.into_iter();
    let controller = lifecycle::process();
    let mut signals = Count::default();
    let first = loop {
        let signal = match early.next() {
            Some(signal) => {
                tracing::debug!(signal = %signal, "signal received before lichtara listened");
                signal
            }
            None => tokio::select! {
                signal = listener.recv() => signal,
                () = controller.begun() => break None,
            },
        };
        if !asks_reload(signal) {
            break Some(signal);
        }
        // Not deduplicated as the shutdown signals are: a SIGHUP after a
        // reload ended asks for the changes made since. Requests that come
        // while one runs make one reload after it.
        tracing::debug!(signal = %signal, "reload requested");
        crate::reload::request();
    };
    if let Some(signal) = first {
        signals.counts(signal);
        controller.trigger(signal);
    }
    let mut finished = std::pin::pin!(controller.finished());
    let mut over = false;
    loop {
        tokio::select! {
            signal = listener.recv() => {
                if asks_reload(signal) && !over {
                    tracing::info!(signal = %signal, "no reload during shutdown: signal ignored");
                    continue;
                }
                if !signals.counts(signal) {
                    continue;
                }
                // Once the sequence is over, the process is about to exit
                // (or goes on without lichtara): a signal now (not a repeat
                // of the last) ends it the way an unhandled one would.
                if over || signals.counted >= 2 {
                    force_exit(signal);
                }
                tracing::warn!(signal = %signal, "signal received during shutdown; send it again to exit at once");
            }
            () = &mut finished, if !over => over = true,
        }
    }
}

fn signal_number(signal: Trigger) -> i32 {
    match signal {
        Trigger::Signal { number, .. } => number,
        _ => 0,
    }
}

/// Ends the process at a second signal, by that signal.
fn force_exit(signal: Trigger) -> ! {
    let number = signal_number(signal);
    exit::abandon(Ending::Signal(number), move || {
        crate::report::write_unfinished_if_asked(128 + number, false);
        let running = lifecycle::process().progress().running();
        tracing::error!(
            signal = %signal,
            hooks_running = ?running,
            "second signal during shutdown: exiting at once"
        );
    })
}

/// Ends the process with 124 when the deadline and the watchdog's grace
/// have passed: the runtime is stuck (or the log is). When the sequence
/// ended and its exit is what is stuck, with that exit's code.
fn deadline_exit() -> ! {
    exit::abandon(Ending::Deadline, || {
        // The report first: it is a file, and the log may be what blocks.
        crate::report::write_unfinished_if_asked(124, true);
        let running = lifecycle::process().progress().running();
        tracing::error!(
            hooks_running = ?running,
            deadline_ms = lifecycle::process().budget().as_millis() as u64,
            exit_code = 124,
            "global deadline passed with the runtime stuck: exiting"
        );
    })
}
