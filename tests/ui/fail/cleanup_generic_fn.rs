#[lichtara::cleanup]
fn hook<T: Default>() {}

fn main() {}
