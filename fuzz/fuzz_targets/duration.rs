//! The duration parser of `#[lichtara::cleanup(timeout = "…")]` and
//! `#[lichtara::main(timeout = "…")]` (the macros' own file, included as it
//! is), and humantime's, which the manager and `LICHTARA_SHUTDOWN_TIMEOUT`
//! use: no input panics, and every accepted timeout is within its bounds.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../lichtara-cleanup-macros/src/timeout.rs"]
#[allow(dead_code)]
mod timeout;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = humantime::parse_duration(text);
    match timeout::parse(text) {
        Ok(duration) => {
            assert!(!duration.is_zero(), "{text:?} accepted as zero");
            assert!(duration <= timeout::MAX_TIMEOUT, "{text:?} accepted past an hour");
        }
        Err(timeout::Refused::NotADuration(reason)) => {
            assert!(!reason.is_empty(), "{text:?} refused without a reason")
        }
        Err(_) => {}
    }
});
