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

/// S11: how many background tasks each program spawns.
pub const S11_TASKS: usize = 10_000;

/// S7's units, phase by phase: how many milliseconds each waits (a flush,
/// a commit, a pool's close). Phase 2's last unit is a sync hook.
pub const S7_PHASES: [&[u64]; 3] = [&[0, 1, 2, 5], &[1, 3, 5, 2], &[2, 4]];

/// The ideal S7 shutdown: each phase's longest unit, one phase after the
/// other.
///
/// ```
/// assert_eq!(lichtara_bench::s7_ideal_ms(), 14);
/// ```
#[must_use]
pub fn s7_ideal_ms() -> u64 {
    S7_PHASES
        .iter()
        .map(|units| units.iter().copied().max().unwrap_or(0))
        .sum()
}

/// S7's async unit `unit` of `phase`: waits as much as the table says.
pub async fn s7_work(phase: usize, unit: usize) {
    let ms = S7_PHASES[phase][unit];
    if ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// S7's sync unit: blocks its thread as an fsync would.
pub fn s7_blocking(phase: usize, unit: usize) {
    std::thread::sleep(std::time::Duration::from_millis(S7_PHASES[phase][unit]));
}
