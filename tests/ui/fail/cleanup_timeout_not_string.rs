#[lichtara::cleanup(timeout = 5)]
fn hook() {}

fn main() {}
