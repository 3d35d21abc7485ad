#[lichtara::reload]
enum Mode {
    Fast,
    Safe,
}

fn main() {}
