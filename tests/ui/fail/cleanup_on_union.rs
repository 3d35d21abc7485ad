#[lichtara::cleanup]
union U {
    a: u32,
}

fn main() {}
