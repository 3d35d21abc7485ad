#[lichtara::cleanup(timeout = "0s")]
fn hook() {}

fn main() {}
