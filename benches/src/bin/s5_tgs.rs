//! S5 with tokio-graceful-shutdown: a subsystem whose cleanup takes 10 s.

use std::time::Duration;

use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn long_cleanup(subsys: &mut SubsystemHandle) -> Result<(), BoxError> {
    subsys.on_shutdown_requested().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    Ok(())
}

async fn root(s: &mut SubsystemHandle) {
    s.start(SubsystemBuilder::new("long", long_cleanup));
    println!("READY");
}

#[tokio::main]
async fn main() {
    let result = Toplevel::new(root)
        .catch_signals()
        .handle_shutdown_requests(Duration::from_secs(20))
        .await;
    std::process::exit(i32::from(result.is_err()));
}
