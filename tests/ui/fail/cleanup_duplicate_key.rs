#[lichtara::cleanup(order = 1, timeout = "1s", order = 2)]
fn hook() {}

fn main() {}
