//! Hooks registered while the program runs, by library parts such as
//! `lichtara::http`'s drain. They join the compile-time hooks in the one
//! sequence.

use std::sync::{Mutex, PoisonError};

use crate::hook::Hook;

static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Adds a hook to the coming sequence.
#[cfg_attr(not(any(feature = "http", feature = "process")), allow(dead_code))]
pub(crate) fn register(hook: Hook) {
    HOOKS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(hook);
}

/// Takes every hook registered so far.
pub(crate) fn take() -> Vec<Hook> {
    std::mem::take(&mut *HOOKS.lock().unwrap_or_else(PoisonError::into_inner))
}
