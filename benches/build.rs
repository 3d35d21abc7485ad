//! Writes the scenario programs' generated parts: S1's no-op hooks (10,000,
//! and 1,000 for the growth row) and S2's 100 ms hooks.

use std::fmt::Write as _;
use std::path::PathBuf;

/// How many cleanup units S1 registers.
const S1_UNITS: usize = 10_000;

/// How many 100 ms cleanup units S2 registers.
const S2_UNITS: usize = 100;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("s1_hooks.rs"), no_op_hooks(S1_UNITS)).expect("write s1_hooks.rs");
    std::fs::write(out.join("s1_hooks_1k.rs"), no_op_hooks(1_000)).expect("write s1_hooks_1k.rs");
    let mut hooks = String::new();
    for n in 0..S2_UNITS {
        writeln!(
            hooks,
            "#[lichtara::cleanup]\nasync fn unit_{n}() {{ tokio::time::sleep(std::time::Duration::from_millis(S2_MS)).await; }}"
        )
        .unwrap();
    }
    std::fs::write(out.join("s2_hooks.rs"), hooks).expect("write s2_hooks.rs");
    println!("cargo:rustc-env=S2_UNITS={S2_UNITS}");
    println!("cargo:rustc-env=S1_UNITS={S1_UNITS}");
    println!("cargo:rerun-if-changed=build.rs");
}

/// `units` no-op hooks in modules of 100, as a service's hooks are spread
/// over its modules.
fn no_op_hooks(units: usize) -> String {
    let mut hooks = String::new();
    for module in 0..units.div_ceil(100) {
        writeln!(hooks, "mod units_{module} {{").unwrap();
        for n in module * 100..units.min((module + 1) * 100) {
            writeln!(hooks, "#[lichtara::cleanup]\nasync fn unit_{n}() {{}}").unwrap();
        }
        writeln!(hooks, "}}").unwrap();
    }
    hooks
}
