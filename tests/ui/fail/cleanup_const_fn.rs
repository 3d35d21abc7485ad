#[lichtara::cleanup]
const fn hook() {}

fn main() {}
