//! S5 with lichtara: a 10 s cleanup; the driver sends a second SIGTERM
//! 200 ms after the first.

#[lichtara::cleanup(timeout = "15s")]
async fn long_cleanup() {
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
}

#[lichtara::main(timeout = "20s")]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
