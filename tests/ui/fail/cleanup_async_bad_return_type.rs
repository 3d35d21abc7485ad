#[lichtara::cleanup]
async fn hook() -> Option<()> {
    None
}

fn main() {}
