//! The manager under systemd: `lichtara run` as a unit's `Type=notify`
//! main process tells systemd when the service is ready (`sd_notify`'s
//! datagram on `$NOTIFY_SOCKET`), and `lichtara unit` writes such units.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::Ready;

/// `$NOTIFY_SOCKET`, if systemd (or another manager speaking its
/// protocol) started this process.
pub(crate) fn socket() -> Option<OsString> {
    std::env::var_os("NOTIFY_SOCKET").filter(|socket| !socket.is_empty())
}

/// Sends `state` (`READY=1`, …) to `$NOTIFY_SOCKET`; nothing without one.
/// A socket that cannot be reached is no reason to stop the service.
pub(crate) fn tell(state: &str) {
    let Some(path) = socket() else { return };
    let Ok(sender) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_bytes();
    let _ = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name)
                .and_then(|address| sender.send_to_addr(state.as_bytes(), &address))
        }
        None => sender.send_to(state.as_bytes(), std::path::Path::new(&path)),
    };
}

/// Says `READY=1`, on a thread of its own, once the run's command counts
/// as started: its start grace passed (`ready = "none"`), or its port
/// accepts (`ready = { port }`, tried until `timeout`; then systemd's own
/// start timeout judges) — unless `ended` is set first (the command ended:
/// the run is on its way out).
pub(crate) fn ready_when(ready: Ready, grace: Duration, timeout: Duration, ended: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("ready".into())
        .spawn(move || {
            let began = Instant::now();
            match ready {
                Ready::None | Ready::Notify => std::thread::sleep(grace),
                Ready::Port(address) => loop {
                    let step = Duration::from_millis(100);
                    if std::net::TcpStream::connect_timeout(&address, step).is_ok() {
                        break;
                    }
                    if began.elapsed() >= timeout || ended.load(Ordering::Acquire) {
                        return;
                    }
                    std::thread::sleep(step);
                },
            }
            if !ended.load(Ordering::Acquire) {
                tell(&format!("READY=1\nMAINPID={}", std::process::id()));
            }
        });
}
