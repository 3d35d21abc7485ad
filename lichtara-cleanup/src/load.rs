//! What runs because the crate is linked, whether or not the program uses
//! a lichtara entry point: `LICHTARA_HOOKS=list` before `main`, and at
//! exit a warning when hooks were registered but no lifecycle ran them —
//! the `#[tokio::main]` service that added hooks and never wired them.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::{config, entry, lifecycle, registry};

/// Set when the program ends on purpose before any hook could run (the
/// listing): nothing to warn of.
static QUIET: AtomicBool = AtomicBool::new(false);

/// No exit-time warning: the program is ending as asked.
pub(crate) fn quiet() {
    QUIET.store(true, Ordering::Release);
}

/// Set before every constructor by a `#[lichtara::main]` program (on ELF
/// systems): its `main` lists the hooks, once all are registered.
static MAIN_ENTRY: AtomicBool = AtomicBool::new(false);

/// Marks the program as a `#[lichtara::main]` one, and from now on
/// records a shutdown signal rather than let it end the process before the
/// supervisor listens (`signal::early`). Not public API: called from
/// `.preinit_array` by generated code.
pub extern "C" fn main_entry() {
    MAIN_ENTRY.store(true, Ordering::Release);
    #[cfg(unix)]
    crate::signal::early::install();
}

/// Before `main`: the listing, if asked and there is something to list.
///
/// `naked`: called by the C library in link order, where a crate's
/// constructors come before those of the crates it depends on. Every
/// crate that can register a hook depends on this one, so its hooks (each
/// an inventory constructor) are in the registry by now; the process-level
/// test `the_hook_listing_works_without_lichtara_main` checks it.
///
/// A `#[lichtara::main]` program lists at `main` instead (complete whatever
/// the order of constructors, which fat LTO changes), and so does a cargo
/// test binary: not at all (a failing suite must not exit 0 with a table).
#[ctor::ctor(unsafe, naked)]
fn at_load() {
    if matches!(config::hooks_listing_requested(), Ok(true))
        && !MAIN_ENTRY.load(Ordering::Acquire)
        && registry::registered() > 0
        && !is_cargo_test_binary()
    {
        entry::list_hooks_if_asked();
    }
}

/// At exit: hooks registered and no sequence ever ran.
#[dtor::dtor(unsafe)]
fn at_exit() {
    let hooks = registry::registered();
    if hooks == 0
        || lifecycle::any_sequence_ran()
        || QUIET.load(Ordering::Acquire)
        || is_cargo_test_binary()
    {
        return;
    }
    crate::logging::warn_now(&format!(
        "{hooks} cleanup hook(s) registered but no lichtara lifecycle ran in this program, so none ran; \
         use #[lichtara::main] instead of #[tokio::main], or wrap the application: `lichtara::run(app).await`"
    ));
}

/// Whether this program is a test binary cargo built (`target/…/deps/
/// name-0123456789abcdef`): it links the hooks of the crate under test,
/// and is no service that forgot to run them.
fn is_cargo_test_binary() -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let in_deps = exe
        .parent()
        .and_then(|dir| dir.file_name())
        .is_some_and(|dir| dir == "deps");
    let hashed = exe
        .file_stem()
        .and_then(|stem| stem.to_str())
        .and_then(|stem| stem.rsplit_once('-'))
        .is_some_and(|(_, hash)| hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()));
    in_deps && hashed
}
