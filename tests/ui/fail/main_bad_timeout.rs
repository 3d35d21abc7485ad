#[lichtara::main(timeout = "ten seconds")]
async fn main() {}
