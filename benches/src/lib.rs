//! What the scenario programs share: nothing but the size of S1.

/// How many cleanup units S1 runs: `S1_UNITS` from the environment (the
/// driver sets it for the 100,000 round), else the build's 10,000.
///
/// ```
/// // SAFETY (edition 2024): no other thread reads the environment here.
/// unsafe { std::env::set_var("S1_UNITS", "12") };
/// assert_eq!(lichtara_bench::s1_units(), 12);
/// ```
#[must_use]
pub fn s1_units() -> usize {
    std::env::var("S1_UNITS")
        .ok()
        .and_then(|units| units.parse().ok())
        .unwrap_or_else(|| env!("S1_UNITS").parse().expect("build.rs sets S1_UNITS"))
}
