#[tokio::main]
#[lichtara::main]
async fn main() {}
