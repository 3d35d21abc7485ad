//! S7 hand-rolled: the same 10 units in 3 phases, each phase a `JoinSet`
//! awaited before the next, each unit under its own 1 s timeout; the sync
//! unit on the blocking pool.

use std::time::Duration;

use lichtara_bench::{S7_PHASES, s7_blocking, s7_work};

#[tokio::main]
async fn main() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("register SIGTERM");
    println!("READY");
    term.recv().await;
    for (phase, units) in S7_PHASES.iter().enumerate() {
        let mut set = tokio::task::JoinSet::new();
        for (unit, _) in units.iter().enumerate() {
            let limit = Duration::from_secs(1);
            if phase == 1 && unit == 3 {
                set.spawn(async move {
                    let _ = tokio::time::timeout(
                        limit,
                        tokio::task::spawn_blocking(move || s7_blocking(phase, unit)),
                    )
                    .await;
                });
            } else {
                set.spawn(async move {
                    let _ = tokio::time::timeout(limit, s7_work(phase, unit)).await;
                });
            }
        }
        while set.join_next().await.is_some() {}
    }
}
