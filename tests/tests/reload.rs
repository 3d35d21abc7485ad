//! Reload hooks at SIGHUP: run in order, the service goes on serving,
//! systemd hears the notify-reload protocol on a socket the test owns, a
//! failing reload leaves the service running, and a reload running when
//! shutdown begins is abandoned for it.

#![cfg(unix)]

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use lichtara_tests::harness::{PATIENCE, Proc};
use nix::sys::signal::Signal;

const PROGRAM: &str = env!("CARGO_BIN_EXE_reload_hooks");

/// A notify socket of this test's own, removed at the end.
struct Socket {
    dir: PathBuf,
    socket: UnixDatagram,
}

impl Socket {
    fn new(test: &str) -> Socket {
        let dir = std::env::temp_dir().join(format!("lichtara-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("the socket's folder");
        let socket = UnixDatagram::bind(dir.join("notify.sock")).expect("bind the socket");
        socket.set_read_timeout(Some(PATIENCE)).expect("a timeout");
        Socket { dir, socket }
    }

    fn path(&self) -> String {
        self.dir.join("notify.sock").display().to_string()
    }

    /// The next datagram.
    fn next(&self) -> String {
        let mut buffer = [0u8; 1024];
        let length = self
            .socket
            .recv(&mut buffer)
            .expect("a notification within PATIENCE");
        String::from_utf8_lossy(&buffer[..length]).into_owned()
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Now on CLOCK_MONOTONIC, in microseconds.
fn monotonic_usec() -> u64 {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("the clock");
    now.tv_sec() as u64 * 1_000_000 + now.tv_nsec() as u64 / 1_000
}

/// What the service answers on its port.
fn ask(port: &str) -> String {
    let mut stream =
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect to the service");
    stream.set_read_timeout(Some(PATIENCE)).expect("a timeout");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("its answer");
    answer
}

fn start(socket: &Socket, env: &[(&str, &str)]) -> (Proc, String) {
    let path = socket.path();
    let mut env = env.to_vec();
    env.push(("NOTIFY_SOCKET", &path));
    let mut service = Proc::start(PROGRAM, &env);
    let port = service
        .wait_for_prefix("listening ")
        .trim_start_matches("listening ")
        .to_owned();
    assert_eq!(socket.next(), "READY=1");
    (service, port)
}

/// Checks the reload's pair of datagrams: RELOADING=1 with a monotonic
/// time between `before` and now, then READY=1 (and what follows it).
fn reload_datagrams(socket: &Socket, before: u64) -> String {
    let reloading = socket.next();
    let usec = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .unwrap_or_else(|| panic!("not the notify-reload pair: {reloading:?}"));
    let usec: u64 = usec.parse().expect("microseconds");
    assert!(
        before <= usec && usec <= monotonic_usec(),
        "{usec} not between {before} and now"
    );
    socket.next()
}

#[test]
fn sighup_runs_the_reload_hooks_in_order_and_the_service_goes_on() {
    let socket = Socket::new("reload-order");
    let (mut service, port) = start(&socket, &[]);
    for round in 1..=2 {
        let before = monotonic_usec();
        service.signal(Signal::SIGHUP);
        service.wait_for_prefix(&format!("reload report {round} "));
        assert_eq!(reload_datagrams(&socket, before), "READY=1");
        assert_eq!(ask(&port), "pong\n", "serving after reload {round}");
    }
    service.signal(Signal::SIGTERM);
    assert_eq!(socket.next(), "STOPPING=1");
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    for round in 1..=2 {
        assert!(
            ended.has(&format!("reload report {round} ok=true hooks=3")),
            "{ended}"
        );
    }
    // Phase by phase, each reload before the next.
    let first = ended.position("reload first");
    let second = ended.position("reload second");
    let cache = ended.position("reload cache 1");
    assert!(first < second && second < cache, "{ended}");
    assert!(cache < ended.position("reload cache 2"), "{ended}");
    // A reload is not a shutdown: the cleanups ran once, at SIGTERM, and
    // the managed instance was reloaded, not taken.
    assert_eq!(
        ended
            .stdout
            .iter()
            .filter(|l| *l == "cleanup flush")
            .count(),
        1,
        "{ended}"
    );
    assert!(ended.has("cache cleaned after 2 reloads"), "{ended}");
    assert!(ended.stderr.contains("reload complete"), "{ended}");
}

#[test]
fn a_failing_reload_is_reported_and_the_service_keeps_running() {
    let socket = Socket::new("reload-fails");
    let (mut service, port) = start(&socket, &[("FAIL_FIRST_RELOAD", "1")]);
    let before = monotonic_usec();
    service.signal(Signal::SIGHUP);
    service.wait_for_line("reload report 1 ok=false hooks=3");
    let ready = reload_datagrams(&socket, before);
    assert!(
        ready.starts_with("READY=1\nSTATUS=last reload failed: reload_hooks::second"),
        "{ready:?}"
    );
    assert_eq!(ask(&port), "pong\n", "serving after a failed reload");
    // The next reload is a new one, and succeeds.
    let before = monotonic_usec();
    service.signal(Signal::SIGHUP);
    service.wait_for_line("reload report 2 ok=true hooks=3");
    // The failure's status is cleared.
    assert_eq!(reload_datagrams(&socket, before), "READY=1\nSTATUS=");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.stderr.contains("reload failed"), "{ended}");
    assert!(
        ended.stderr.contains("the settings file is broken"),
        "{ended}"
    );
    // The third phase still ran after the failure in the second.
    assert!(ended.has("reload cache 1"), "{ended}");
}

#[test]
fn a_reload_running_when_shutdown_begins_is_abandoned_for_it() {
    abandoned("1");
}

#[test]
fn a_reload_hook_in_its_first_poll_when_shutdown_begins_is_abandoned_too() {
    abandoned("late");
}

/// A reload whose first hook hangs (`HANG_RELOAD=mode`), then SIGTERM.
fn abandoned(mode: &str) {
    let socket = Socket::new(&format!("reload-abandoned-{mode}"));
    let (mut service, _port) = start(&socket, &[("HANG_RELOAD", mode)]);
    service.signal(Signal::SIGHUP);
    service.wait_for_line("reload hanging");
    service.signal(Signal::SIGTERM);
    let ended = service.wait();
    assert_eq!(ended.code(), Some(0), "{ended}");
    assert!(ended.stderr.contains("reload abandoned"), "{ended}");
    assert!(!ended.stderr.contains("is still running"), "{ended}");
    // Dropped before the shutdown's hooks ran, and the rest of the reload
    // never began.
    assert!(
        ended.position("hanging reload dropped") < ended.position("cleanup flush"),
        "{ended}"
    );
    assert!(!ended.has("reload second"), "{ended}");
    assert!(ended.has("cache cleaned after 0 reloads"), "{ended}");
}

#[test]
fn the_hook_listing_shows_the_reload_hooks_and_what_sighup_means() {
    let output = std::process::Command::new(PROGRAM)
        .env("LICHTARA_HOOKS", "list")
        .output()
        .expect("run the listing");
    assert!(output.status.success(), "{output:?}");
    let listing = String::from_utf8_lossy(&output.stdout);
    assert!(listing.contains("2 cleanup hooks registered"), "{listing}");
    assert!(
        listing.contains("3 reload hooks registered (SIGHUP reloads instead of shutting down)"),
        "{listing}"
    );
    // After that line, in the order they run.
    let reloads = &listing[listing.find("reload hooks registered").expect("the line")..];
    let first = reloads.find("reload_hooks::first").expect("first listed");
    let second = reloads.find("reload_hooks::second").expect("second listed");
    let cache = reloads.find("reload_hooks::Cache").expect("Cache listed");
    assert!(first < second && second < cache, "{listing}");
}
