#[lichtara::cleanup(order = x)]
fn hook() {}

fn main() {}
