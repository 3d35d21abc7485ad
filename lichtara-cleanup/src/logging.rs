//! The compact stderr subscriber `#[lichtara::main]` installs when the
//! application installed none, so a newcomer sees the shutdown.

use std::io::{IsTerminal, Write};

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

/// Logs a warning through `tracing` when a subscriber can receive it, and
/// on stderr otherwise (before `main` installed one, or in a program that
/// never will): a warning about a hook that will not run must be seen.
pub(crate) fn warn_now(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        // Not `eprintln!`: this may run at exit, where a failed write must
        // not panic.
        let _ = writeln!(std::io::stderr(), "lichtara: warning: {message}");
    }
}

/// Logs an error as [`warn_now`] logs a warning.
pub(crate) fn error_now(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{message}");
    } else {
        let _ = writeln!(std::io::stderr(), "lichtara: {message}");
    }
}
