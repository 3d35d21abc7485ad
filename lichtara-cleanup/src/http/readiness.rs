//! Readiness: 200 while serving, 503 from the moment shutdown begins — so a
//! load balancer stops sending traffic before the listener closes.

/// The readiness status to answer right now.
///
/// # Examples
///
/// ```
/// assert_eq!(lichtara::http::readiness(), http::StatusCode::OK);
/// ```
pub fn readiness() -> http::StatusCode {
    if crate::is_shutting_down() {
        http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        http::StatusCode::OK
    }
}

/// An axum handler for the readiness probe; mount it at any path.
///
/// # Examples
///
/// ```
/// let app: axum::Router = axum::Router::new().route("/ready", axum::routing::get(lichtara::http::ready));
/// # let _ = app;
/// ```
#[cfg(feature = "axum")]
pub async fn ready() -> (http::StatusCode, &'static str) {
    match readiness() {
        http::StatusCode::OK => (http::StatusCode::OK, "ready\n"),
        status => (status, "shutting down\n"),
    }
}
