#[lichtara::main]
#[tokio::main]
async fn main() {}
