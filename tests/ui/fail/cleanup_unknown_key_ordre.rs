#[lichtara::cleanup(ordre = 1)]
fn hook() {}

fn main() {}
