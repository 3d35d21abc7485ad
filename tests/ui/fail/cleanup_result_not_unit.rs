#[lichtara::cleanup]
fn hook() -> Result<u32, std::io::Error> {
    Ok(3)
}

fn main() {}
