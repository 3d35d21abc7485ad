//! The `timeout` value of the attributes, from text to a duration: pure
//! (no syn), so that the fuzz target `duration` (fuzz/) runs it as it is.

use std::time::Duration;

/// The longest `timeout` accepted: no orchestrator waits longer for a
/// shutdown, so a longer one is a mistake.
pub(crate) const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

/// Why a `timeout` text is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a duration; the parser's reason.
    NotADuration(String),
    /// Zero.
    Zero,
    /// Longer than [`MAX_TIMEOUT`].
    TooLong,
}

/// Parses `"250ms"`, `"5s"`, `"1m 30s"`: more than zero, at most an hour.
pub(crate) fn parse(text: &str) -> Result<Duration, Refused> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|err| Refused::NotADuration(err.to_string()))?;
    if duration.is_zero() {
        Err(Refused::Zero)
    } else if duration > MAX_TIMEOUT {
        Err(Refused::TooLong)
    } else {
        Ok(duration)
    }
}
