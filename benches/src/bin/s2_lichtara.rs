//! S2 with lichtara: 100 hooks of 100 ms in one phase; they run
//! concurrently, so the ideal is 100 ms.

const S2_MS: u64 = 100;

include!(concat!(env!("OUT_DIR"), "/s2_hooks.rs"));

#[lichtara::main]
async fn main() {
    println!("READY");
    lichtara::signalled().await;
}
