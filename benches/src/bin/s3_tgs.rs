//! S3 with tokio-graceful-shutdown: one subsystem never finishes; the
//! shutdown timeout is 1 s.

use std::time::Duration;

use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn stuck(subsys: &mut SubsystemHandle) -> Result<(), BoxError> {
    subsys.on_shutdown_requested().await;
    std::future::pending::<()>().await;
    Ok(())
}

async fn root(s: &mut SubsystemHandle) {
    s.start(SubsystemBuilder::new("stuck", stuck));
    println!("READY");
}

#[tokio::main]
async fn main() {
    let result = Toplevel::new(root)
        .catch_signals()
        .handle_shutdown_requests(Duration::from_secs(1))
        .await;
    std::process::exit(i32::from(result.is_err()));
}
