//! systemd's notification protocol, observed on a datagram socket the test
//! creates and passes as NOTIFY_SOCKET.

#![cfg(unix)]

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use lichtara_tests::harness::{PATIENCE, Proc};
use nix::sys::signal::Signal;

/// The next notification.
fn next(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 512];
    let length = socket
        .recv(&mut buffer)
        .expect("a notification within PATIENCE");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

/// Reads notifications until one starts with `prefix`; returns the others.
fn until(socket: &UnixDatagram, prefix: &str) -> Vec<String> {
    let mut others = Vec::new();
    loop {
        let message = next(socket);
        if message.starts_with(prefix) {
            return others;
        }
        others.push(message);
        assert!(others.len() < 1000, "no {prefix} among {others:?}");
    }
}

#[test]
fn ready_watchdog_stopping_and_extend_timeout_reach_systemd() {
    let dir = std::env::temp_dir().join(format!("lichtara-notify-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut service = Proc::start(
        env!("CARGO_BIN_EXE_notify"),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    );
    until(&socket, "READY=1");
    service.wait_for_line("READY");
    until(&socket, "WATCHDOG=1");
    service.signal(Signal::SIGTERM);
    until(&socket, "STOPPING=1");
    service.wait_for_line("slow_flush started");
    let extend = loop {
        let message = next(&socket);
        if let Some(usec) = message.strip_prefix("EXTEND_TIMEOUT_USEC=") {
            break usec.parse::<u64>().expect("microseconds");
        }
    };
    // Never past the global deadline (10 s) and its one-second margin.
    assert!(
        extend > 0 && extend <= Duration::from_secs(11).as_micros() as u64,
        "{extend}"
    );
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    let _ = std::fs::remove_dir_all(&dir);
}
