#[lichtara::cleanup(timeout = "5 parsecs")]
fn hook() {}

fn main() {}
