//! S1's growth row with lichtara: 1,000 no-op `#[lichtara::cleanup]` hooks
//! (in 10 modules of 100, written by build.rs); READY, then wait for
//! SIGTERM.

include!(concat!(env!("OUT_DIR"), "/s1_hooks_1k.rs"));

#[lichtara::main]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
