#[lichtara::cleanup]
struct Pool<T> {
    conn: T,
}

fn main() {}
