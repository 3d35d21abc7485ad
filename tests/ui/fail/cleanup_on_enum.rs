#[lichtara::cleanup]
enum Db {
    A,
}

fn main() {}
