//! S1 with tokio-graceful-shutdown: `S1_UNITS` (10,000 unless the driver
//! says otherwise) subsystems that each wait for the shutdown request, then
//! do their no-op cleanup.

use std::time::Duration;

use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn unit(subsys: &mut SubsystemHandle) -> Result<(), BoxError> {
    subsys.on_shutdown_requested().await;
    Ok(())
}

async fn root(s: &mut SubsystemHandle) {
    let units = lichtara_bench::s1_units();
    for n in 0..units {
        s.start(SubsystemBuilder::new(format!("unit{n}"), unit));
    }
    println!("READY");
}

#[tokio::main]
async fn main() {
    let result = Toplevel::new(root)
        .catch_signals()
        .handle_shutdown_requests(Duration::from_secs(10))
        .await;
    std::process::exit(i32::from(result.is_err()));
}
