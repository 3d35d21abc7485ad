//! A service with tracked tasks, as `MODE` says. Every mode has the hook
//! `flush` (prints `flushed`) and prints `READY` once its tasks run.
//!
//! - `serve` (default): `consumer` (async, stops at `signalled()`),
//!   `poller` (stops when its `token()` is cancelled) and `ticker`
//!   (`spawn_blocking`, stops when `is_shutting_down()`); after the signal
//!   `main` tries to spawn `late` and prints `late refused: ERROR`.
//! - `panic`: `worker` panics at a `fail` line on stdin (the default
//!   policy: shutdown begins).
//! - `log`: as `panic`, with `OnFailure::Log`: the service goes on, and
//!   prints `still serving` at a `ping` line.
//! - `stuck`: `stuck` never ends; the deadline is 2 s, so the tasks' wind
//!   down has 1 s.

use std::time::Duration;

use lichtara_tests::event;
use tokio::sync::mpsc;

#[lichtara::cleanup]
async fn flush() {
    event("flushed");
}

/// Lines from stdin, read by a thread of their own.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (send, lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

#[lichtara::main(timeout = "2s")]
async fn main() -> anyhow::Result<()> {
    let mode = std::env::var("MODE").unwrap_or_else(|_| "serve".into());
    let mut stdin = stdin_lines();
    match mode.as_str() {
        "serve" => {
            lichtara::spawn("consumer", async {
                lichtara::signalled().await;
                event("consumer stopped");
            })?;
            let token = lichtara::token();
            lichtara::spawn("poller", async move {
                token.cancelled().await;
                event("poller stopped");
                Ok::<(), std::io::Error>(())
            })?;
            lichtara::spawn_blocking("ticker", || {
                while !lichtara::is_shutting_down() {
                    std::thread::sleep(Duration::from_millis(1));
                }
                event("ticker stopped");
            })?;
            event("READY");
            lichtara::signalled().await;
            match lichtara::spawn("late", async {}) {
                Ok(_) => event("late spawned"),
                Err(err) => event(&format!("late refused: {err}")),
            }
        }
        "panic" | "log" => {
            let (fail, failed) = tokio::sync::oneshot::channel::<()>();
            let policy = if mode == "log" {
                lichtara::OnFailure::Log
            } else {
                lichtara::OnFailure::Shutdown
            };
            lichtara::Task::new("worker")
                .on_failure(policy)
                .spawn(async move {
                    if failed.await.is_ok() {
                        panic!("the queue is gone");
                    }
                })?;
            event("READY");
            let mut fail = Some(fail);
            loop {
                tokio::select! {
                    () = lichtara::signalled() => break,
                    line = stdin.recv() => match line.as_deref() {
                        Some("fail") => {
                            if let Some(fail) = fail.take() {
                                let _ = fail.send(());
                            }
                        }
                        Some("ping") => event("still serving"),
                        // Stdin closed: wait for the signal alone.
                        None => {
                            lichtara::signalled().await;
                            break;
                        }
                        Some(_) => {}
                    },
                }
            }
        }
        "stuck" => {
            lichtara::spawn("stuck", std::future::pending::<()>())?;
            event("READY");
            lichtara::signalled().await;
        }
        other => anyhow::bail!("unknown MODE {other}"),
    }
    Ok(())
}
