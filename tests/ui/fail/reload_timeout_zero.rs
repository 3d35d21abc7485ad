#[lichtara::reload(timeout = "0s")]
async fn reread() {}

fn main() {}
