//! A service with reload hooks: SIGHUP reloads (three phases, one of them a
//! managed resource), the service answers on 127.0.0.1 before, during and
//! after; SIGTERM shuts it down. `FAIL_FIRST_RELOAD=1`: the first reload's
//! second hook fails. `HANG_RELOAD=1`: the first hook never ends (until the
//! shutdown abandons it); `HANG_RELOAD=late`: nor does its first poll until
//! shutdown has begun.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use lichtara_tests::event;
use tokio::io::AsyncWriteExt;

static FAILED_ONCE: AtomicBool = AtomicBool::new(false);

/// Says when the hanging hook is dropped: the abandoned reload must not go
/// on beside the shutdown.
struct Dropped;

impl Drop for Dropped {
    fn drop(&mut self) {
        event("hanging reload dropped");
    }
}

#[lichtara::reload(order = 1, timeout = "30s")]
async fn first() {
    event("reload first");
    if let Some(mode) = std::env::var_os("HANG_RELOAD") {
        let _dropped = Dropped;
        event("reload hanging");
        if mode == "late" {
            // Its first poll lasts until shutdown has begun: the reload is
            // abandoned while this hook has not yet been handed a task.
            let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while !lichtara::is_shutting_down() && std::time::Instant::now() < until {
                std::thread::yield_now();
            }
        }
        std::future::pending::<()>().await;
    }
}

#[lichtara::reload(order = 2)]
fn second() -> std::io::Result<()> {
    event("reload second");
    if std::env::var_os("FAIL_FIRST_RELOAD").is_some() && !FAILED_ONCE.swap(true, Ordering::SeqCst)
    {
        return Err(std::io::Error::other("the settings file is broken"));
    }
    Ok(())
}

#[lichtara::cleanup(order = 2)]
#[lichtara::reload(order = 3)]
struct Cache {
    reloads: AtomicUsize,
}

impl lichtara::Reload for Cache {
    async fn reload(&self) -> Result<(), lichtara::BoxError> {
        let count = self.reloads.fetch_add(1, Ordering::SeqCst) + 1;
        event(&format!("reload cache {count}"));
        Ok(())
    }
}

impl lichtara::Cleanup for Cache {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        event(&format!(
            "cache cleaned after {} reloads",
            self.reloads.load(Ordering::SeqCst)
        ));
        Ok(())
    }
}

#[lichtara::cleanup(order = 1)]
async fn flush() {
    event("cleanup flush");
}

#[lichtara::main]
async fn main() {
    let _cache = lichtara::manage(Cache {
        reloads: AtomicUsize::new(0),
    });
    let mut reloads = lichtara::reloaded();
    tokio::spawn(async move {
        while let Some(report) = reloads.next().await {
            event(&format!(
                "reload report {} ok={} hooks={}",
                report.number(),
                report.is_success(),
                report.hooks().len()
            ));
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = listener.local_addr().expect("its address").port();
    lichtara::systemd::ready();
    event(&format!("listening {port}"));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                if let Ok((mut stream, _)) = accepted {
                    let _ = stream.write_all(b"pong\n").await;
                }
            }
            () = lichtara::signalled() => break,
        }
    }
}
