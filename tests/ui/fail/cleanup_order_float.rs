#[lichtara::cleanup(order = 1.5)]
fn hook() {}

fn main() {}
