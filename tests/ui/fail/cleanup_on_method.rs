struct Db;

impl Db {
    #[lichtara::cleanup]
    async fn close(&self) {}
}

fn main() {}
