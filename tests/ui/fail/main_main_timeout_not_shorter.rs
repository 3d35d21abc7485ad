// main's wind-down must leave the hooks some of the deadline.

#[lichtara::main(timeout = "2s", main_timeout = "3s")]
async fn main() {}
