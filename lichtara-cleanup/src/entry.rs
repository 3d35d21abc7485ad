//! The entry point behind `#[lichtara::main]`.

use std::future::Future;
use std::process::Termination;
use std::time::Duration;

use crate::controller::controller;
use crate::{config, drive, exit, registry, supervisor};

/// What `#[lichtara::main]` was given. Not public API.
#[derive(Debug, Default)]
pub struct MainConfig {
    /// The global deadline, from `timeout = "…"`.
    pub timeout: Option<Duration>,
}

/// Runs a `#[lichtara::main]` program: the hook listing if asked, else
/// `body` on the runtime `builder` makes, then the sequence, then exits with
/// the report's code. Never returns. Not public API.
pub fn run_main<F, T>(config: MainConfig, mut builder: tokio::runtime::Builder, body: F) -> T
where
    F: Future<Output = T>,
    T: Termination,
{
    match config::hooks_listing_requested() {
        Ok(true) => {
            let mut out = std::io::stdout().lock();
            let code = match registry::write_listing(&mut out) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            drop(out);
            exit::exit(code)
        }
        Ok(false) => {}
        Err(err) => fail_at_startup(&err),
    }
    let controller = controller();
    match config::resolve_timeout(config.timeout) {
        Ok(budget) => {
            controller.set_budget(budget);
            if let Some(warning) = config::grace_period_warning(budget) {
                eprintln!("lichtara: warning: {warning}");
            }
        }
        Err(err) => fail_at_startup(&err),
    }
    controller.claim();
    controller.enable_default_logging();
    if let Err(err) = supervisor::start(true) {
        eprintln!(
            "lichtara: cannot listen for signals ({err}); shutdown begins only when main ends"
        );
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => fail_at_startup(&err),
    };
    let report = runtime.block_on(drive::drive(body, Vec::new()));
    // The runtime is not dropped: a hook abandoned on the blocking pool
    // would hold the drop until it returns. Exiting ends every thread.
    exit::exit(report.exit_code())
}

/// Exit code for a setting that keeps the program from starting.
const STARTUP_FAILURE: i32 = 2;

fn fail_at_startup(err: &dyn std::error::Error) -> ! {
    eprintln!("lichtara: {err}");
    exit::exit(STARTUP_FAILURE)
}
