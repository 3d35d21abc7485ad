//! The compact stderr subscriber `#[lichtara::main]` installs when the
//! application installed none, so a newcomer sees the shutdown.

use std::io::IsTerminal;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the default subscriber unless one is set. It is installed when
/// shutdown begins, not at startup, so that an application may still call
/// `tracing_subscriber::fmt().init()` in `main`.
pub(crate) fn install_default() {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .and_then(|value| match value.parse::<Targets>() {
            Ok(targets) => Some(targets),
            Err(err) => {
                eprintln!("lichtara: ignoring RUST_LOG={value:?} ({err}); logging at info");
                None
            }
        })
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .compact()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Losing a race with the application's own subscriber is fine.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}
