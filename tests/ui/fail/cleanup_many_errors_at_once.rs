// Every problem in one attribute is reported in one compile.
#[lichtara::cleanup(ordre = 1, timeout = "soon", name = 3, order = "x")]
fn hook() {}

fn main() {}
