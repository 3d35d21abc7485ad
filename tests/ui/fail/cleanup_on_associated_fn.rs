struct Db;

impl Db {
    #[lichtara::cleanup]
    fn close_all() {}
}

fn main() {}
