#[lichtara::cleanup(priority = 1)]
fn hook() {}

fn main() {}
