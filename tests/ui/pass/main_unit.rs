#[lichtara::cleanup]
fn hook() {}

#[lichtara::main]
async fn main() {}
