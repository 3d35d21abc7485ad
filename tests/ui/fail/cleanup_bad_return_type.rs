#[lichtara::cleanup]
fn hook() -> u32 {
    3
}

fn main() {}
