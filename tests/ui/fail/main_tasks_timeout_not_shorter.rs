// The tasks' wind-down must leave the hooks some of the deadline.

#[lichtara::main(timeout = "5s", tasks_timeout = "5s")]
async fn main() {}
