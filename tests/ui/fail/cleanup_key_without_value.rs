#[lichtara::cleanup(order)]
fn hook() {}

fn main() {}
