#[lichtara::main(flavor = "single")]
async fn main() {}
