//! The supervisor: one OS thread with a small runtime of its own that turns
//! signals into the shutdown trigger, ends the process at a second signal,
//! and — for `#[lichtara::main]` — enforces the global deadline even when
//! the application's runtime is stuck (a blocked thread, a wedged task).

use std::io;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use crate::controller::controller;
use crate::sequence::Progress;
use crate::signal::Listener;
use crate::{Trigger, exit};

/// How long past the deadline the watchdog waits for the sequencer to end
/// on its own (and report properly) before it ends the process itself.
const WATCHDOG_GRACE: Duration = Duration::from_millis(100);

/// What the watchdog names if it must end the process.
static PROGRESS: OnceLock<Progress> = OnceLock::new();

pub(crate) fn progress() -> &'static Progress {
    PROGRESS.get_or_init(Progress::default)
}

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

fn spawn(watchdog: bool) -> io::Result<()> {
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
                let _ = ready_tx.send(Ok(()));
                // Sort the hooks now, while nothing waits for them.
                crate::registry::plan();
                supervise(listener, watchdog).await;
            });
        })?;
    ready_rx
        .recv()
        .unwrap_or_else(|_| Err(io::Error::other("the supervisor thread ended at startup")))
}

async fn supervise(mut listener: Listener, watchdog: bool) {
    let controller = controller();
    let mut signals = 0;
    tokio::select! {
        signal = listener.recv() => {
            signals += 1;
            controller.trigger(signal);
        }
        () = controller.begun() => {}
    }
    let hard_deadline = tokio::time::Instant::from_std(controller.deadline() + WATCHDOG_GRACE);
    let watch = async {
        if watchdog {
            tokio::time::sleep_until(hard_deadline).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(watch);
    let mut finished = std::pin::pin!(controller.finished());
    loop {
        tokio::select! {
            signal = listener.recv() => {
                signals += 1;
                if signals >= 2 {
                    force_exit(signal);
                }
                tracing::warn!(signal = %signal, "signal received during shutdown; send it again to exit at once");
            }
            () = &mut watch => deadline_exit(),
            () = &mut finished => break,
        }
    }
    // The sequence is over; the process is about to exit or go on without
    // lichtara. A signal now ends it the way an unhandled one would.
    let signal = listener.recv().await;
    force_exit(signal);
}

fn signal_number(signal: Trigger) -> i32 {
    match signal {
        Trigger::Signal { number, .. } => number,
        _ => 0,
    }
}

fn force_exit(signal: Trigger) -> ! {
    let running = progress().running();
    tracing::error!(
        signal = %signal,
        hooks_running = ?running,
        "second signal during shutdown: exiting at once"
    );
    exit::die_of_signal(signal_number(signal))
}

fn deadline_exit() -> ! {
    let running = progress().running();
    tracing::error!(
        hooks_running = ?running,
        deadline_ms = controller().budget().as_millis() as u64,
        exit_code = 124,
        "global deadline passed with the runtime stuck: exiting"
    );
    exit::exit(124)
}
