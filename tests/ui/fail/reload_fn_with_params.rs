#[lichtara::reload]
async fn reread(path: &str) {}

fn main() {}
