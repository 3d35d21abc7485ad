//! A service with hooks in four phases, a managed resource, and a `main`
//! whose behaviour `MODE` picks: `serve` (wind down on `signalled()`),
//! `return` (return at once), `call` (call `lichtara::shutdown()`),
//! `ignore` (never look at shutdown: dropped when it begins).

use std::time::Duration;

use lichtara_tests::event;

#[lichtara::cleanup(order = -1, timeout = "5s")]
async fn stop_accepting() {
    event("start stop_accepting");
    tokio::time::sleep(Duration::from_millis(50)).await;
    event("end stop_accepting");
}

#[lichtara::cleanup(order = 1)]
fn flush_sync() -> std::io::Result<()> {
    event("start flush_sync");
    std::thread::sleep(Duration::from_millis(200));
    event("end flush_sync");
    Ok(())
}

#[lichtara::cleanup(order = 1, timeout = "5s")]
async fn flush_async() -> anyhow::Result<()> {
    event("start flush_async");
    tokio::time::sleep(Duration::from_millis(200)).await;
    event("end flush_async");
    Ok(())
}

#[lichtara::cleanup(order = 2, name = "service::the_last_one")]
async fn last() {
    event("last");
}

#[lichtara::cleanup(timeout = "5s")]
struct Connection {
    id: u32,
}

impl lichtara::Cleanup for Connection {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        event(&format!("close connection {}", self.id));
        Ok(())
    }
}

/// Says when `main`'s locals are released.
struct DropGuard;

impl Drop for DropGuard {
    fn drop(&mut self) {
        event("main's locals dropped");
    }
}

#[lichtara::main(timeout = "20s")]
async fn main() {
    let kept = lichtara::manage(Connection { id: 1 });
    let also_kept = kept.clone();
    drop(kept);
    // The runtime owns managed instances: one whose handles are all gone
    // is cleaned too, and only a released one is not.
    drop(lichtara::manage(Connection { id: 2 }));
    let _ = lichtara::manage(Connection { id: 3 });
    #[allow(unused_must_use)]
    {
        lichtara::manage(Connection { id: 5 });
    }
    let released = lichtara::manage(Connection { id: 4 }).release();
    assert!(
        released.is_some(),
        "the only handle gives the instance back"
    );
    let mode = std::env::var("MODE").unwrap_or_else(|_| "serve".into());
    event("READY");
    match mode.as_str() {
        "serve" => lichtara::signalled().await,
        "return" => {}
        "call" => {
            lichtara::shutdown();
            lichtara::signalled().await;
        }
        "ignore" => {
            let _guard = DropGuard;
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
        }
        other => panic!("unknown MODE {other}"),
    }
    event(&format!(
        "main wound down, holding connection {}",
        also_kept.id
    ));
}
