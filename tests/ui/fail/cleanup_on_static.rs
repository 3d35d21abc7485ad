#[lichtara::cleanup]
static LIMIT: u32 = 3;

fn main() {}
