//! Worker processes that cannot outlive the service: each is spawned through
//! `lichtara::process`, leads its own process group (so its own children go
//! with it), dies with the service even if the service is SIGKILLed
//! (PDEATHSIG, Linux), and is stopped — SIGTERM, bounded wait, SIGKILL — as
//! a hook of the shutdown sequence.
//!
//! ```text
//! cargo run -p lichtara-examples --bin children -- --workers 3
//! ```

use clap::Parser;

/// Spawns workers and waits for shutdown.
#[derive(Debug, Parser)]
struct Args {
    /// How many workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Become a child subreaper: the workers' orphaned children are
    /// re-parented to this service, reaped here, and ended at shutdown.
    #[arg(long)]
    subreaper: bool,
}

#[lichtara::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.subreaper {
        lichtara::process::become_subreaper()?;
    }
    let mut workers = Vec::new();
    for _ in 0..args.workers {
        // Each worker has a child of its own: the grandchild of the service.
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "sleep 300 & wait"]);
        let worker = lichtara::process::spawn(command).await?;
        println!("worker {}", worker.id());
        workers.push(worker);
    }
    println!("READY");
    lichtara::signalled().await;
    Ok(())
}
