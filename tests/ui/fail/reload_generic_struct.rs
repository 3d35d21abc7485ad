#[lichtara::cleanup]
#[lichtara::reload]
struct Cache<T> {
    items: Vec<T>,
}

fn main() {}
