#[lichtara::reload]
const unsafe fn reread() {}

fn main() {}
