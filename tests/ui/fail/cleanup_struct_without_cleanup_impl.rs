#[lichtara::cleanup(order = 2)]
struct Database {
    url: String,
}

fn main() {}
