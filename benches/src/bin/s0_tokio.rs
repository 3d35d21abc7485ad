//! S0 with tokio alone: `#[tokio::main]` and a SIGTERM handler; READY, then
//! wait for SIGTERM.

#[tokio::main]
async fn main() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("register SIGTERM");
    println!("READY");
    term.recv().await;
}
