#[lichtara::cleanup(timeout = "soon")]
async fn hook() {}

fn main() {}
