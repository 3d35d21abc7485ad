#[lichtara::main]
fn main() {}
