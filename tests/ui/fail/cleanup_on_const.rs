#[lichtara::cleanup]
const LIMIT: u32 = 3;

fn main() {}
