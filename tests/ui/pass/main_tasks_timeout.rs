// `tasks_timeout` bounds the tracked tasks' wind-down; this one ends at
// the shutdown, so the program exits 0.

#[lichtara::main(timeout = "5s", tasks_timeout = "1s")]
async fn main() {
    lichtara::spawn("ends_at_shutdown", async { lichtara::signalled().await })
        .expect("spawned before shutdown");
}
