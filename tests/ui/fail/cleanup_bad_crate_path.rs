#[lichtara::cleanup(crate = "not a path")]
fn hook() {}

fn main() {}
