trait Store {
    fn close();
}

struct Db;

impl Store for Db {
    #[lichtara::cleanup]
    fn close() {}
}

fn main() {}
