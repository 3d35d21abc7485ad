//! S2 with tokio-graceful-shutdown: 100 subsystems that each sleep 100 ms
//! after the shutdown request.

use std::time::Duration;

use tokio_graceful_shutdown::{SubsystemBuilder, SubsystemHandle, Toplevel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn unit(subsys: &mut SubsystemHandle) -> Result<(), BoxError> {
    subsys.on_shutdown_requested().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

async fn root(s: &mut SubsystemHandle) {
    let units: usize = env!("S2_UNITS").parse().expect("S2_UNITS");
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
