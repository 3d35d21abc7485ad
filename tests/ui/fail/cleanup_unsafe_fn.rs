#[lichtara::cleanup]
unsafe fn hook() {}

fn main() {}
