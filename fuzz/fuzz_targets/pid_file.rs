//! The manager's PID-file reader (its own file, included as it is): no
//! input panics; whatever it accepts names a real process group and reads
//! back the same after being written out again.

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../lichtara-cleanup/src/bin/lichtara/pidfile.rs"]
#[allow(dead_code)]
mod pidfile;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match pidfile::parse(text) {
        Ok(record) => {
            assert!(record.pid > 1 && record.pgid > 1, "{text:?}");
            let written = serde_json::to_string(&record).expect("a record serialises");
            assert_eq!(pidfile::parse(&written).as_ref(), Ok(&record));
        }
        Err(reason) => assert!(!reason.is_empty(), "{text:?} refused without a reason"),
    }
});
