#[lichtara::cleanup]
extern "C" fn hook() {}

fn main() {}
