//! Settings read from the environment.

use std::time::Duration;

use crate::error::ConfigError;

/// The global deadline when nothing else sets one.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Environment variable that overrides every configured global deadline.
pub(crate) const TIMEOUT_VAR: &str = "LICHTARA_SHUTDOWN_TIMEOUT";

/// Environment variable that asks a `#[lichtara::main]` program to list its hooks.
pub(crate) const HOOKS_VAR: &str = "LICHTARA_HOOKS";

/// The global deadline: the environment wins over `configured`, which wins
/// over the default.
pub(crate) fn resolve_timeout(configured: Option<Duration>) -> Result<Duration, ConfigError> {
    match var(TIMEOUT_VAR)? {
        Some(value) if !value.trim().is_empty() => parse_timeout(&value),
        _ => Ok(configured.unwrap_or(DEFAULT_TIMEOUT)),
    }
}

/// A `LICHTARA_*` variable: `None` when unset, an error when it is not
/// UTF-8 (never silently ignored).
fn var(variable: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(variable) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(value)) => Err(ConfigError::NotUnicode {
            variable,
            value: value.to_string_lossy().into_owned(),
        }),
    }
}

fn parse_timeout(value: &str) -> Result<Duration, ConfigError> {
    let timeout =
        humantime::parse_duration(value.trim()).map_err(|source| ConfigError::InvalidTimeout {
            value: value.to_owned(),
            source,
        })?;
    if timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout {
            value: value.to_owned(),
        });
    }
    Ok(timeout)
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
const KUBERNETES_DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// A warning when the global deadline cannot fit in the time the
/// orchestrator gives before SIGKILL: under Kubernetes
/// (`KUBERNETES_SERVICE_HOST`), the pod's grace period is
/// `LICHTARA_GRACE_PERIOD` if set, else Kubernetes' default of 30 s.
pub(crate) fn grace_period_warning(deadline: Duration) -> Option<String> {
    std::env::var_os("KUBERNETES_SERVICE_HOST")?;
    let grace = match std::env::var("LICHTARA_GRACE_PERIOD") {
        Ok(value) => humantime::parse_duration(value.trim()).ok()?,
        Err(_) => KUBERNETES_DEFAULT_GRACE,
    };
    (deadline >= grace).then(|| {
        format!(
            "the shutdown deadline ({}) is not shorter than the pod's grace period ({}): Kubernetes will SIGKILL the hooks mid-way; raise terminationGracePeriodSeconds (and set LICHTARA_GRACE_PERIOD to match) or lower the deadline",
            humantime::format_duration(deadline),
            humantime::format_duration(grace)
        )
    })
}

/// Whether `LICHTARA_HOOKS=list` asks for the hook listing.
pub(crate) fn hooks_listing_requested() -> Result<bool, ConfigError> {
    match var(HOOKS_VAR)? {
        Some(value) if value.trim() == "list" => Ok(true),
        Some(value) if value.trim().is_empty() => Ok(false),
        Some(value) => Err(ConfigError::UnknownHooksCommand { value }),
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_durations() {
        assert_eq!(parse_timeout("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_timeout(" 1m 30s ").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn rejects_bad_and_zero_durations() {
        assert!(matches!(
            parse_timeout("soon"),
            Err(ConfigError::InvalidTimeout { .. })
        ));
        assert!(matches!(
            parse_timeout("5"),
            Err(ConfigError::InvalidTimeout { .. })
        ));
        assert!(matches!(
            parse_timeout("0s"),
            Err(ConfigError::ZeroTimeout { .. })
        ));
    }
}
