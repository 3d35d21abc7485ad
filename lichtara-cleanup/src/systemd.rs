//! systemd's notification protocol, when `NOTIFY_SOCKET` is set (Unix).
//!
//! With a unit of `Type=notify`, lichtara sends `STOPPING=1` when shutdown
//! begins and `EXTEND_TIMEOUT_USEC=…` every second while the hooks run (never
//! past the global deadline), so a long but progressing shutdown is not
//! killed; with `WatchdogSec=`, it pings `WATCHDOG=1` at half the interval
//! from a task of the application's runtime, so a wedged runtime stops the
//! pings. Call [`ready`] when the service is ready;
//! `lichtara::http::Server` does it once it listens. Without
//! `NOTIFY_SOCKET` every call does nothing.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Sends `state` (`"READY=1"`, `"STATUS=…"`, …) to systemd. Returns whether
/// there was a socket to send to.
///
/// # Errors
///
/// When the socket named by `NOTIFY_SOCKET` cannot be reached.
///
/// # Examples
///
/// ```
/// // SAFETY: no other thread of this doctest reads the environment.
/// unsafe { std::env::remove_var("NOTIFY_SOCKET") };
/// assert!(!lichtara::systemd::notify("STATUS=warming up").unwrap());
/// ```
pub fn notify(state: &str) -> io::Result<bool> {
    let sent = send_to_socket(state)?;
    if sent && state.lines().any(|line| line == "READY=1") {
        READY_SENT.store(true, Ordering::Release);
    }
    Ok(sent)
}

/// Whether `READY=1` went out: a reload tells systemd of itself only then
/// (a service reloaded before it was ready must not claim to be ready).
static READY_SENT: AtomicBool = AtomicBool::new(false);

fn send_to_socket(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    // Never block: a full queue on systemd's side must not stall a
    // runtime thread (the message is dropped and the failure logged).
    socket.set_nonblocking(true)?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    match bytes.split_first() {
        // An abstract socket: `@name`.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        Some((b'@', name)) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        }
        Some(_) => {
            socket.send_to(state.as_bytes(), &path)?;
        }
        None => return Ok(false),
    }
    Ok(true)
}

/// Tells systemd the service is ready (`READY=1`). Does nothing without
/// `NOTIFY_SOCKET`; a failure to send is logged, not returned.
///
/// # Examples
///
/// ```
/// lichtara::systemd::ready();
/// ```
pub fn ready() {
    send("READY=1");
}

/// Sends and logs a failure.
pub(crate) fn send(state: &str) {
    if let Err(err) = notify(state) {
        tracing::warn!(error = %err, state, "cannot notify systemd");
    }
}

/// A reload begins: `RELOADING=1` and `MONOTONIC_USEC=…` in one datagram
/// (`Type=notify-reload` needs the pair), if the service said it was
/// ready. Returns whether it told systemd, so that [`reloaded`] does too.
pub(crate) fn reloading() -> bool {
    if !READY_SENT.load(Ordering::Acquire) {
        return false;
    }
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |now| {
        (now.tv_sec() as u64)
            .saturating_mul(1_000_000)
            .saturating_add(now.tv_nsec() as u64 / 1_000)
    });
    send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
    true
}

/// A reload ended (the service goes on, whatever its hooks did): `READY=1`,
/// and which hooks failed, if any, in `STATUS=`.
pub(crate) fn reloaded(failed: &[&str]) {
    // The last failure's status stays until a later reload clears it.
    static FAILED_LAST: AtomicBool = AtomicBool::new(false);
    let failed_before = FAILED_LAST.swap(!failed.is_empty(), Ordering::AcqRel);
    if failed.is_empty() && failed_before {
        send("READY=1\nSTATUS=");
    } else if failed.is_empty() {
        send("READY=1");
    } else {
        send(&format!(
            "READY=1\nSTATUS=last reload failed: {}",
            failed.join(", ")
        ));
    }
}

/// Pings systemd's watchdog at half its interval from a task of the
/// application's runtime: if that runtime wedges, the pings stop and
/// systemd acts, which is the point of a watchdog.
pub(crate) fn spawn_watchdog() {
    if let Some(interval) = watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                send("WATCHDOG=1");
            }
        });
    }
}

/// The watchdog interval systemd asks for, if it asks this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0 && std::env::var_os("NOTIFY_SOCKET").is_some()).then(|| Duration::from_micros(usec))
}

/// While the hooks run: tell systemd, every second, how long the stop may
/// still take — up to the global deadline and a second more.
pub(crate) async fn extend_while_running(deadline: tokio::time::Instant) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return std::future::pending().await;
    }
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        send(&format!(
            "EXTEND_TIMEOUT_USEC={}",
            (left + Duration::from_secs(1)).as_micros()
        ));
        tokio::time::sleep(Duration::from_secs(1).min(left.max(Duration::from_millis(10)))).await;
    }
}
