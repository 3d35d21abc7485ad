#[lichtara::cleanup(timout = "5s")]
fn hook() {}

fn main() {}
