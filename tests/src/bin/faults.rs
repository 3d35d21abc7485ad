//! A service whose hooks misbehave as its environment says: the subject of
//! the fault matrix (tests/tests/faults.rs).
//!
//! Hooks: `first_a` (async) and `first_b` (sync) in phase 0, `second`
//! (async) in phase 1, `third` (async) in phase 2. The first three have a
//! 3 s timeout, `third` (where the matrix allocates) 30 s: long enough that
//! a hook the matrix expects to end is never timed out by a loaded machine,
//! and the ones expected to time out still do. Each prints `start NAME`, and does what `FAULT_NAME` says:
//! `ok` (default; prints `end NAME`), `panic`, `error`, `hang` (never
//! finishes), `block` (blocks its thread forever), `alloc` (allocates and
//! touches 256 MiB, then frees it), `wait` (waits for a `release` line on
//! stdin).
//!
//! `MAIN`: `serve` (default: wind down at the signal), `return` (return at
//! once), `panic` (panic while winding down), `spawn_panic` (a task spawned
//! by `main` panics while the hooks run: `second` lets it go, `third`
//! waits until it has).
//!
//! `REPORT_PAUSE=1`: the log's closing summary waits for a `report` line on
//! stdin, after printing `reporting`.

use anyhow::bail;
use lichtara_tests::event;
use std::sync::{Condvar, Mutex};
use tokio::sync::{Notify, Semaphore};

/// `release` lines from stdin.
static GATE: Semaphore = Semaphore::const_new(0);
/// `release` lines from stdin, for sync hooks.
static SYNC_GATE: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());
/// `report` lines from stdin.
static REPORT: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());
/// Told when `second` starts.
static SECOND_STARTED: Notify = Notify::const_new();
/// Told (by a drop during its unwinding) once the task has panicked: the
/// panic happens while the hooks run, not after the process has exited.
static TASK_PANICKED: Notify = Notify::const_new();

/// Tells [`TASK_PANICKED`] when it is dropped.
struct OnUnwind;

impl Drop for OnUnwind {
    fn drop(&mut self) {
        TASK_PANICKED.notify_one();
    }
}

fn fault(hook: &str) -> String {
    std::env::var(format!("FAULT_{}", hook.to_uppercase())).unwrap_or_else(|_| "ok".into())
}

/// What every hook does first, sync or async.
fn begin(hook: &str) -> anyhow::Result<String> {
    event(&format!("start {hook}"));
    let fault = fault(hook);
    match fault.as_str() {
        "panic" => panic!("{hook} panicked on purpose"),
        "error" => bail!("{hook} failed on purpose"),
        "block" => loop {
            // Blocks this thread for good (park may wake spuriously).
            std::thread::park();
        },
        "alloc" => {
            let mut heap = vec![0u8; 256 << 20];
            for page in heap.chunks_mut(4096) {
                page[0] = 1;
            }
            let touched: usize = heap.chunks(4096).map(|page| usize::from(page[0])).sum();
            event(&format!("{hook} touched {touched} pages"));
        }
        _ => {}
    }
    Ok(fault)
}

async fn act(hook: &str) -> anyhow::Result<()> {
    match begin(hook)?.as_str() {
        "hang" => std::future::pending::<()>().await,
        "wait" => GATE.acquire().await?.forget(),
        _ => {}
    }
    event(&format!("end {hook}"));
    Ok(())
}

#[lichtara::cleanup(order = 0, timeout = "3s")]
async fn first_a() -> anyhow::Result<()> {
    act("first_a").await
}

#[lichtara::cleanup(order = 0, timeout = "3s")]
fn first_b() -> anyhow::Result<()> {
    match begin("first_b")?.as_str() {
        "hang" => loop {
            std::thread::park();
        },
        "wait" => pass(&SYNC_GATE),
        _ => {}
    }
    event("end first_b");
    Ok(())
}

#[lichtara::cleanup(order = 1, timeout = "3s")]
async fn second() -> anyhow::Result<()> {
    // A permit, not a wake-up of current waiters: the task that waits may
    // not have been polled yet on a loaded machine.
    SECOND_STARTED.notify_one();
    act("second").await
}

#[lichtara::cleanup(order = 2, timeout = "30s")]
async fn third() -> anyhow::Result<()> {
    if std::env::var("MAIN").is_ok_and(|mode| mode == "spawn_panic") {
        TASK_PANICKED.notified().await;
    }
    act("third").await
}

/// Reads stdin lines: `release` opens the gate once, `report` lets the
/// summary through.
fn read_stdin() {
    std::thread::spawn(|| {
        for line in std::io::stdin().lines() {
            match line.as_deref() {
                Ok("release") => {
                    GATE.add_permits(1);
                    open(&SYNC_GATE);
                }
                Ok("report") => open(&REPORT),
                _ => break,
            }
        }
    });
}

fn open(gate: &(Mutex<usize>, Condvar)) {
    *gate.0.lock().unwrap() += 1;
    gate.1.notify_all();
}

fn pass(gate: &(Mutex<usize>, Condvar)) {
    let guard = gate.0.lock().unwrap();
    let mut guard = gate.1.wait_while(guard, |count| *count == 0).unwrap();
    *guard -= 1;
}

/// Holds the closing summary of the log until a `report` line.
struct PauseReport;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PauseReport {
    fn on_event(&self, traced: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        traced.record(&mut message);
        if message.0.starts_with("shutdown complete") || message.0.starts_with("shutdown finished")
        {
            event("reporting");
            pass(&REPORT);
        }
    }
}

#[lichtara::main(timeout = "60s")]
async fn main() {
    read_stdin();
    if std::env::var_os("REPORT_PAUSE").is_some() {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::io::stderr),
            )
            .with(PauseReport)
            .init();
    }
    let mode = std::env::var("MAIN").unwrap_or_else(|_| "serve".into());
    if mode == "spawn_panic" {
        tokio::spawn(async {
            let _tell = OnUnwind;
            SECOND_STARTED.notified().await;
            panic!("a task of main's panicked while the hooks ran");
        });
    }
    event("READY");
    match mode.as_str() {
        "serve" | "spawn_panic" => lichtara::signalled().await,
        "return" => {}
        "panic" => {
            lichtara::signalled().await;
            panic!("main panicked while winding down");
        }
        other => panic!("unknown MAIN {other}"),
    }
    event("main wound down");
}
