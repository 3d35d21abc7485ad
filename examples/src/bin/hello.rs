//! The first program to run: a small service that registers a few cleanup
//! hooks, works until Ctrl-C (or shuts itself down after 5 seconds) and
//! shows the whole shutdown sequence in its log.
//!
//! ```text
//! cargo run -p lichtara-examples --bin hello
//! LICHTARA_HOOKS=list cargo run -p lichtara-examples --bin hello
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// Requests "served" so far; flushed to disk at shutdown.
static SERVED: AtomicU64 = AtomicU64::new(0);

/// The service's scratch directory, removed at shutdown.
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

/// Phase 1: stop taking new work. Runs first.
#[lichtara::cleanup(order = 1, timeout = "2s")]
async fn stop_accepting() {
    tracing::info!("no longer accepting work");
}

/// Phase 2: flush what is in memory, within 5 seconds.
#[lichtara::cleanup(order = 2, timeout = "5s")]
async fn flush_metrics() -> std::io::Result<()> {
    let Some(dir) = SCRATCH.get() else {
        return Ok(());
    };
    let served = SERVED.load(Ordering::Relaxed);
    tokio::fs::write(dir.join("metrics.txt"), format!("served {served}\n")).await?;
    tracing::info!(served, "metrics flushed");
    Ok(())
}

/// Phase 3: a synchronous hook; it runs on the blocking pool.
#[lichtara::cleanup(order = 3)]
fn remove_scratch_dir() -> std::io::Result<()> {
    if let Some(dir) = SCRATCH.get() {
        std::fs::remove_dir_all(dir)?;
        tracing::info!(dir = %dir.display(), "scratch directory removed");
    }
    Ok(())
}

/// A resource: every live instance is synced to disk in phase 2, alongside
/// `flush_metrics`.
#[lichtara::cleanup(order = 2, timeout = "3s")]
struct Journal {
    file: Mutex<std::fs::File>,
}

impl lichtara::Cleanup for Journal {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        let file = self.file.lock().map_err(|_| "journal lock poisoned")?;
        file.sync_all()?;
        tracing::info!("journal synced");
        Ok(())
    }
}

#[lichtara::main(timeout = "10s")]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("lichtara-hello-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let journal = lichtara::manage(Journal {
        file: Mutex::new(std::fs::File::create(dir.join("journal.log"))?),
    });
    SCRATCH.get_or_init(|| dir);

    println!("hello: working; press Ctrl-C to shut down (or wait 5 seconds)");
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let give_up = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(give_up);
    let shutdown = lichtara::signalled();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = &mut give_up => lichtara::shutdown(),
            _ = tick.tick() => {
                let served = SERVED.fetch_add(1, Ordering::Relaxed) + 1;
                let mut file = journal.file.lock().expect("journal lock");
                writeln!(file, "request {served}")?;
            }
        }
    }
    println!("hello: main is winding down; the hooks run next");
    Ok(())
}
