//! `lichtara::http` inside `lichtara::testing` runs: each run's servers
//! have their own drain state, so one run's timed-out drain, which cuts
//! its connections, cuts nothing of another run's.

use std::sync::Arc;
use std::time::Duration;

use lichtara::testing::{self, Run};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Sends `GET path` and returns what came back until the server closed the
/// connection (the request says `Connection: close`).
async fn get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    Ok(answer)
}

/// A run serving `/` and `/hang` (never answers; notifies `began` when it
/// is called); the app awaits `work` with the server's address, then shuts
/// down.
async fn serving<W, F>(
    drain_timeout: Duration,
    began: Arc<Notify>,
    work: W,
) -> lichtara::ShutdownReport
where
    W: FnOnce(std::net::SocketAddr) -> F + Send + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    Run::new()
        .run(async move {
            let app = axum::Router::new()
                .route("/", axum::routing::get(|| async { "ok" }))
                .route(
                    "/hang",
                    axum::routing::get(move || {
                        began.notify_one();
                        std::future::pending::<&'static str>()
                    }),
                );
            let server = lichtara::http::Server::bind("127.0.0.1:0")
                .await
                .unwrap()
                .drain_timeout(drain_timeout);
            let addr = server.local_addr().unwrap();
            let serving = tokio::spawn(server.serve(app));
            work(addr).await;
            lichtara::shutdown();
            serving.await.unwrap().unwrap();
        })
        .await
}

#[test]
fn a_runs_timed_out_drain_cuts_nothing_of_the_next_run() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // The first run's drain times out on a request that never ends: its
        // connection is cut.
        let began = Arc::new(Notify::new());
        let first = serving(
            Duration::from_millis(200),
            began.clone(),
            |addr| async move {
                tokio::spawn(async move {
                    let _ = get(addr, "/hang").await;
                });
                began.notified().await;
                assert_eq!(lichtara::http::connections().http, 1);
            },
        )
        .await;
        let drain = |report: &lichtara::ShutdownReport| {
            report
                .hooks()
                .iter()
                .find(|hook| hook.name().starts_with("lichtara::http::drain"))
                .map(|hook| hook.outcome().clone())
                .unwrap_or_else(|| panic!("no drain in {report:?}"))
        };
        assert_eq!(drain(&first), lichtara::Outcome::TimedOut, "{first:?}");
        // The next run's server serves, and counts only its own
        // connections.
        let second = serving(
            Duration::from_secs(30),
            Arc::new(Notify::new()),
            |addr| async move {
                assert_eq!(lichtara::http::connections().http, 0);
                let answer = get(addr, "/").await.expect("served");
                assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
                assert!(answer.ends_with("ok"), "{answer}");
            },
        )
        .await;
        testing::assert_nothing_not_run(&second);
        assert_eq!(drain(&second), lichtara::Outcome::Ok, "{second:?}");
    });
}
