//! A program whose `#[lichtara::main] fn main` sits in a module that its
//! real `main` never calls (as a CLI that serves on one subcommand only):
//! the early signal handler must not swallow its signals. It prints
//! `READY` and sleeps; a SIGTERM past the hold window (1 s) ends it as if
//! lichtara were not there.

use lichtara_tests::event;

mod server {
    #[lichtara::main]
    pub async fn main() {
        lichtara::signalled().await;
    }
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("serve") {
        server::main();
        return;
    }
    event("READY");
    std::thread::sleep(std::time::Duration::from_secs(60));
}
