//! Error types.

/// The error type hooks report: any error that can cross threads.
///
/// `std::io::Error`, `anyhow::Error` and every `thiserror` type convert into
/// it with `?` or `.into()`.
///
/// # Examples
///
/// ```
/// let err: lichtara::BoxError = std::io::Error::other("disk full").into();
/// assert_eq!(err.to_string(), "disk full");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A shutdown setting that could not be used.
///
/// # Examples
///
/// ```
/// // SAFETY: no other thread of this doctest reads the environment.
/// unsafe { std::env::set_var("LICHTARA_SHUTDOWN_TIMEOUT", "soon") };
/// let report = tokio::runtime::Runtime::new()
///     .unwrap()
///     .block_on(lichtara::Shutdown::new().run(async {}));
/// // The bad value is logged and the configured deadline is used instead.
/// assert_eq!(report.exit_code(), 0);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `LICHTARA_SHUTDOWN_TIMEOUT` is not a duration such as `"10s"`.
    #[error(
        "LICHTARA_SHUTDOWN_TIMEOUT={value:?} is not a duration (write it like \"10s\" or \"1m 30s\"): {source}"
    )]
    InvalidTimeout {
        /// The value found in the environment.
        value: String,
        /// Why it did not parse.
        source: humantime::DurationError,
    },
    /// `LICHTARA_SHUTDOWN_TIMEOUT` is zero: no hook could ever run.
    #[error(
        "LICHTARA_SHUTDOWN_TIMEOUT={value:?} is zero; the deadline must leave time for the hooks"
    )]
    ZeroTimeout {
        /// The value found in the environment.
        value: String,
    },
    /// A `LICHTARA_*` variable holds bytes that are not UTF-8: it cannot
    /// be what was meant, and ignoring it would hide that.
    #[error("{variable}={value:?} is not UTF-8; set it to a plain text value or unset it")]
    NotUnicode {
        /// The variable's name.
        variable: &'static str,
        /// Its value, with the bytes that are not UTF-8 replaced.
        value: String,
    },
    /// `LICHTARA_HOOKS` holds a value other than `list`.
    #[error("LICHTARA_HOOKS={value:?} is not understood; the only value is `list`")]
    UnknownHooksCommand {
        /// The value found in the environment.
        value: String,
    },
}
