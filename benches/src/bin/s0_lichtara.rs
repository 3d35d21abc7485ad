//! S0 with lichtara: `#[lichtara::main]` and no hooks; READY, then wait for
//! SIGTERM. What the attribute costs a service before it serves.

#[lichtara::main]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
