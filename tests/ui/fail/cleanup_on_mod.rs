#[lichtara::cleanup]
mod hooks {}

fn main() {}
