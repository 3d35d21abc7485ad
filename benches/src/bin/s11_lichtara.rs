//! S11 with lichtara: 10,000 tracked tasks (`lichtara::spawn`), spawned
//! before READY, each waiting for the shutdown; at SIGTERM they wind down
//! and are reported, then the (no) hooks run.

#[lichtara::main]
async fn main() {
    for _ in 0..lichtara_bench::S11_TASKS {
        lichtara::spawn("worker", async { lichtara::signalled().await }).expect("spawned");
    }
    println!("READY");
    lichtara::signalled().await;
}
