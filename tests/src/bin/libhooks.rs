//! A binary whose only hooks live in a library crate, linked because it is
//! named here.

use lichtara_fixture_hooklib as _;

#[lichtara::main]
async fn main() {
    lichtara_tests::event("READY");
    lichtara::signalled().await;
}
