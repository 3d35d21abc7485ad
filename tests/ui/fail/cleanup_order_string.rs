#[lichtara::cleanup(order = "2")]
fn hook() {}

fn main() {}
