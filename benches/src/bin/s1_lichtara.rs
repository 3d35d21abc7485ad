//! S1 with lichtara: 10,000 no-op `#[lichtara::cleanup]` hooks; READY, then
//! wait for SIGTERM.

include!(concat!(env!("OUT_DIR"), "/s1_hooks.rs"));

#[lichtara::main]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
