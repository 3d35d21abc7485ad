#[lichtara::cleanup]
async fn hook(pool: u32, retries: u8) {}

fn main() {}
