//! Declarative graceful shutdown for tokio services.
//!
//! Mark what must be cleaned up; lichtara runs it — in order, on time, with a
//! clear log and exit code — whenever the process ends: SIGTERM, SIGINT or
//! SIGHUP (Ctrl-C and console events on Windows), `main` returning or
//! panicking, or a call to [`shutdown()`].
//!
//! ```no_run
//! #[lichtara::cleanup(order = 1, timeout = "2s")]
//! async fn stop_accepting() {
//!     // ...
//! }
//!
//! #[lichtara::cleanup(order = 2, timeout = "5s")]
//! async fn flush_metrics() -> std::io::Result<()> {
//!     Ok(())
//! }
//!
//! #[lichtara::cleanup(order = 3)]
//! fn remove_temp_dir() {
//!     // sync hooks run on the blocking pool
//! }
//!
//! #[lichtara::main(timeout = "20s")] // drop-in for #[tokio::main]
//! async fn main() {
//!     lichtara::signalled().await; // serve until shutdown begins
//! }
//! ```
//!
//! # The sequence
//!
//! 1. Shutdown begins: [`signalled()`] resolves.
//! 2. `main` winds down: it is awaited until it returns, within the global
//!    deadline. A `main` that never called [`signalled()`] cannot react, and
//!    is dropped at once.
//! 3. Hooks run in ascending `order`; hooks of equal order run concurrently;
//!    a phase starts when the previous one has ended. A hook past its own
//!    `timeout` is abandoned and reported `timed out`; a hook that errs or
//!    panics is reported; the others run regardless.
//! 4. The global deadline (10 s by default; `#[lichtara::main(timeout =
//!    "…")]`, [`Shutdown::timeout`], or `LICHTARA_SHUTDOWN_TIMEOUT`, which
//!    wins) bounds everything from the trigger: past it, the remaining
//!    hooks are `not run` and the process exits with 124. A watchdog thread
//!    enforces it even when a hook blocks a thread forever.
//! 5. A one-line summary is logged and the process exits with the
//!    [`ShutdownReport::exit_code`]: 0 clean, 1 `main` or a hook failed,
//!    101 `main` panicked, 124 deadline passed. A second signal during
//!    shutdown ends the process at once, dying of that signal (128+N).
//!
//! # Seeing the hooks
//!
//! `LICHTARA_HOOKS=list` makes a `#[lichtara::main]` program print its
//! registered hooks (order, timeout, kind, name, source) and exit 0 without
//! running `main`.
//!
//! # Limits of compile-time registration
//!
//! Hooks are registered with [`inventory`](https://docs.rs/inventory), which
//! runs small constructors before `main` (on Linux, macOS, Windows and the
//! other platforms inventory supports). A hook in a library crate is
//! registered only if the final binary links that crate, and rustc drops a
//! crate that nothing in the binary names. If a library only declares hooks,
//! name it once:
//!
//! ```ignore
//! use my_hooks_crate as _;
//! ```
//!
//! Then `LICHTARA_HOOKS=list` shows its hooks.
//!
//! # Logging
//!
//! Every step is a [`tracing`](https://docs.rs/tracing) event with
//! structured fields (`trigger`, `hook`, `order`, `elapsed_ms`, `outcome`).
//! When the application installed no subscriber by the time shutdown
//! begins, `#[lichtara::main]` installs a compact stderr one that honours
//! `RUST_LOG` (as `target=level` directives; default `info`).
//!
//! At `info`, a phase of up to 8 hooks logs each of them; a larger phase
//! logs one `phase finished` line, plus each of its hooks that did not end
//! ok or ran past half its timeout (1 s without one); every hook has a
//! line at `debug`. So 10,000 hooks cost a shutdown a few lines, and the
//! default subscriber writes the lines logged together in one write.

#![deny(missing_docs, unreachable_pub)]
#![warn(rust_2018_idioms)]

mod builder;
mod config;
mod drive;
mod entry;
mod error;
mod exit;
#[doc(hidden)]
pub mod hook;
mod lifecycle;
mod load;
mod logging;
mod registry;
mod reload;
mod report;
mod resource;
mod sequence;
mod signal;
mod supervisor;
mod task;
mod unwind;

#[cfg(feature = "http")]
pub mod http;
#[cfg(all(unix, feature = "listen"))]
pub mod listen;
#[cfg(all(target_os = "linux", feature = "process"))]
mod proc_stat;
#[cfg(all(unix, feature = "process"))]
pub mod process;
#[cfg(unix)]
pub mod systemd;
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use crate::builder::Shutdown;
pub use crate::entry::run;
pub use crate::error::{BoxError, ConfigError};
pub use crate::lifecycle::{Signalled, is_shutting_down, shutdown, signalled, token};
pub use crate::reload::{Reload, ReloadReport, Reloads, reloaded};
pub use crate::report::{
    HookReport, MainOutcome, MainOutput, Outcome, ShutdownReport, TaskReport, Trigger,
};
pub use crate::resource::{Cleanup, Managed, manage};
pub use crate::task::{OnFailure, SpawnError, Task, TaskHandle, spawn, spawn_blocking};

/// Registers a cleanup hook: a free function at module level (sync or
/// async, no parameters, returning `()` or `Result<(), E>` with
/// `E: Into<BoxError>`), or a struct that implements [`Cleanup`] whose
/// instances are handed over with [`manage`]. A hook is registered for the
/// whole program, so the attribute is refused on an associated function
/// and on a function inside another function's body.
///
/// Keys, all optional: `order = N` (an `i32`, default 0; lower runs
/// first), `timeout = "5s"` (default: none, bounded by the global
/// deadline), `name = "…"` (default: `module::path::item`), `crate =
/// "path"` (when lichtara-cleanup is renamed in `Cargo.toml`).
///
/// # Examples
///
/// ```
/// #[lichtara::cleanup(order = 2, timeout = "5s")]
/// async fn flush_metrics() -> Result<(), std::io::Error> {
///     Ok(())
/// }
///
/// #[lichtara::cleanup(order = 3, name = "temp files")]
/// fn remove_temp_dir() {}
/// # fn main() {}
/// ```
pub use lichtara_cleanup_macros::cleanup;

/// Registers a reload hook: with any registered, SIGHUP reloads instead of
/// shutting down. It takes what [`cleanup`] takes — a free function at
/// module level (sync or async, no parameters, returning `()` or
/// `Result<(), E>`), or a managed resource struct (also marked
/// `#[lichtara::cleanup]`, so that [`manage`] owns its instances) that
/// implements [`Reload`] — and the same keys: `order`, `timeout`, `name`,
/// `crate`.
///
/// At SIGHUP the reload hooks run phase by phase as the cleanup hooks do
/// at shutdown (ascending `order`, concurrently within a phase, each within
/// its timeout, the whole within the global deadline's length, panics
/// contained); systemd hears `RELOADING=1` with `MONOTONIC_USEC` before and
/// `READY=1` after (`Type=notify-reload`), once the service has said it
/// was ready. A failed reload is logged and reported ([`reloaded`]), and
/// the service goes on. A reload running when shutdown begins is abandoned.
/// SIGHUPs that arrive while a reload runs make one more reload after it.
///
/// # Examples
///
/// ```
/// #[lichtara::reload(order = 1, timeout = "2s")]
/// async fn reread_config() -> std::io::Result<()> {
///     let _settings = std::fs::read_to_string("/etc/hostname")?;
///     Ok(())
/// }
///
/// #[lichtara::reload(order = 2, name = "reopen log")]
/// fn reopen_log() {}
/// # fn main() {}
/// ```
pub use lichtara_cleanup_macros::reload;

/// Drop-in for `#[tokio::main]` that runs the shutdown sequence: it accepts
/// tokio's options (`flavor = "current_thread" | "multi_thread"`,
/// `worker_threads = N`, `start_paused = true`) plus `timeout = "…"` (the
/// global deadline), `main_timeout = "…"` and `tasks_timeout = "…"` (how
/// long `main` and the tracked tasks wind down, shorter than `timeout`;
/// default half of it) and `crate = "path"`.
///
/// The program exits with the [`ShutdownReport::exit_code`] once the hooks
/// have run.
///
/// # Examples
///
/// ```no_run
/// #[lichtara::main(flavor = "current_thread", timeout = "20s")]
/// async fn main() -> anyhow::Result<()> {
///     lichtara::signalled().await;
///     Ok(())
/// }
/// ```
pub use lichtara_cleanup_macros::main;
