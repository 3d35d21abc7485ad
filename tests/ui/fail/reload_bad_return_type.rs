#[lichtara::reload]
fn reread() -> u32 {
    7
}

fn main() {}
