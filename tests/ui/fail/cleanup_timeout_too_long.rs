#[lichtara::cleanup(timeout = "2h")]
fn hook() {}

fn main() {}
