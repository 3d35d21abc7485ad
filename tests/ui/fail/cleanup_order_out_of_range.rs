#[lichtara::cleanup(order = 3000000000)]
fn hook() {}

fn main() {}
