#[lichtara::reload(priority = 1, timout = "5s")]
async fn reread() {}

fn main() {}
