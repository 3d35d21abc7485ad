//! S1 with lichtara: 10,000 no-op `#[lichtara::cleanup]` hooks (in 100
//! modules of 100, written by build.rs); READY, then wait for SIGTERM.

include!(concat!(env!("OUT_DIR"), "/s1_hooks.rs"));

#[lichtara::main]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
