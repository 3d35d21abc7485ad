//! S5 hand-rolled, written to exit at a second signal: a 10 s cleanup that
//! a second SIGTERM cuts short.

use std::time::Duration;

#[tokio::main]
async fn main() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    println!("READY");
    term.recv().await;
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(10)) => {}
        _ = term.recv() => std::process::exit(128 + 15),
    }
}
