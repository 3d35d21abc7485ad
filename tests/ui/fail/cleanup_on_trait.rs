#[lichtara::cleanup]
trait Close {}

fn main() {}
