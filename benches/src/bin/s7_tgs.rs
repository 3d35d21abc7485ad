//! S7 with tokio-graceful-shutdown: the same 10 units as subsystems. The
//! crate stops every subsystem at once, so each unit of a phase waits for
//! the phase before it (a semaphore per phase) after the shutdown request;
//! the sync unit runs on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use lichtara_bench::{S7_PHASES, s7_blocking, s7_work};
use tokio::sync::Semaphore;
use tokio_graceful_shutdown::{IntoSubsystem, SubsystemBuilder, SubsystemHandle, Toplevel};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One unit; `done[phase]` gets a permit when it ends.
struct Unit {
    phase: usize,
    unit: usize,
    done: Arc<Vec<Semaphore>>,
}

impl IntoSubsystem<BoxError> for Unit {
    async fn run(self, subsys: &mut SubsystemHandle) -> Result<(), BoxError> {
        let Unit { phase, unit, done } = self;
        subsys.on_shutdown_requested().await;
        if phase > 0 {
            let before = S7_PHASES[phase - 1].len() as u32;
            // Given back at once, not consumed: every unit of this phase
            // waits for all of the phase before.
            drop(done[phase - 1].acquire_many(before).await?);
        }
        if phase == 1 && unit == 3 {
            tokio::task::spawn_blocking(move || s7_blocking(phase, unit)).await?;
        } else {
            s7_work(phase, unit).await;
        }
        done[phase].add_permits(1);
        Ok(())
    }
}

async fn root(s: &mut SubsystemHandle) {
    let done: Arc<Vec<Semaphore>> = Arc::new(S7_PHASES.iter().map(|_| Semaphore::new(0)).collect());
    for (phase, units) in S7_PHASES.iter().enumerate() {
        for unit in 0..units.len() {
            let done = done.clone();
            s.start(SubsystemBuilder::new(
                format!("p{phase}u{unit}"),
                Unit { phase, unit, done }.into_subsystem(),
            ));
        }
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
