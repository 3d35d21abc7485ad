//! A service that keeps `#[tokio::main]` and has hooks, its own and a
//! library's. `MODE` picks how it adopts lichtara: `none` (the hooks are
//! declared and nothing runs them: `main` returns), `signalled` (it waits
//! on `lichtara::signalled()` with no lifecycle for 4 s, then returns),
//! `run` (it wraps its application in `lichtara::run`, the documented
//! path, and serves until a signal).

use std::time::Duration;

use lichtara_fixture_hooklib as _;
use lichtara_tests::event;

#[lichtara::cleanup(order = 1)]
async fn flush() {
    event("flush ran");
}

#[lichtara::cleanup(order = 2)]
struct Pool;

impl lichtara::Cleanup for Pool {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        event("pool closed");
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _pool = lichtara::manage(Pool);
    match std::env::var("MODE").unwrap_or_default().as_str() {
        "none" => event("READY"),
        "signalled" => {
            event("READY");
            // Past the 3 s lichtara allows for `run` to come after a first
            // wait, so that the warning is due.
            let waited = tokio::time::timeout(Duration::from_secs(4), lichtara::signalled()).await;
            assert!(waited.is_err(), "nothing can begin shutdown here");
        }
        "run" => {
            // A worker that waits before `run` claims the sequence: no
            // warning, for `run` comes.
            let worker = tokio::spawn(async {
                lichtara::signalled().await;
                event("worker saw shutdown");
            });
            tokio::task::yield_now().await;
            lichtara::run(async move {
                event("READY");
                worker.await.expect("worker");
                event("wound down");
            })
            .await
        }
        other => panic!("unknown MODE {other}"),
    }
    event("main returned");
}
