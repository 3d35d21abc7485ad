//! The thread that keeps a server's connection timers ends with the
//! server's last connection, even when the `serve` future was dropped (a
//! binary of its own: it counts its process's threads).

#![cfg(target_os = "linux")]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Threads of this process named as the timer thread (names are cut to 15
/// bytes).
fn timer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("list the threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "lichtara-http-t")
        .count()
}

/// Whether `done` holds within 10 s (looked at every 10 ms).
async fn wait_for(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..1_000 {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[test]
fn the_timer_thread_ends_with_the_last_connection_of_a_dropped_server() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let server = lichtara::http::Server::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).await.unwrap();
        // Served once, then the `serve` future is dropped; the keep-alive
        // connection lives on.
        tokio::select! {
            served = server.serve(app) => panic!("serve ended: {served:?}"),
            () = async {
                client.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").await.unwrap();
                let mut answer = [0u8; 512];
                let n = client.read(&mut answer).await.unwrap();
                assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
            } => {}
        }
        // The thread names itself once it runs: waited for, bounded.
        assert!(
            wait_for(|| timer_threads() == 1).await,
            "the connection is timed by a thread of its server's"
        );
        drop(client);
        // The connection's task sees the end of its stream, and the thread
        // is told that the last connection ended.
        assert!(
            wait_for(|| timer_threads() == 0).await,
            "the timer thread outlived the server's last connection"
        );
    });
}
