struct Db;

#[lichtara::cleanup]
impl Db {}

fn main() {}
