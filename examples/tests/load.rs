//! The reference server under load and across restarts: no request whose
//! connection was established before SIGTERM is lost, and `lichtara
//! restart` re-binds the same port at once, leaving nothing behind.
//!
//! Reduced by default (a few runs, in `cargo test --workspace`); the full
//! suite is `bash scripts/stress` (50 load runs, 100 restarts), which sets
//! `LICHTARA_LOAD_RUNS` and `LICHTARA_RESTART_CYCLES`. Every figure is
//! printed; only correctness is asserted. Network on 127.0.0.1 only, every
//! loop bounded, every process reaped.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use lichtara_tests::harness::{PATIENCE, Proc};
use lichtara_tests::load::{Config, Load, Tally};
use nix::sys::signal::Signal;

const SERVER: &str = env!("CARGO_BIN_EXE_http_server");

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[test]
fn every_request_on_a_connection_made_before_sigterm_is_answered() {
    let runs = setting("LICHTARA_LOAD_RUNS", 3);
    let mut total = Tally::default();
    let mut exits = Vec::new();
    for run in 1..=runs {
        let mut server = Proc::start_with_args(SERVER, &["--addr", "127.0.0.1:0"], &[]);
        let addr = server
            .wait_for_prefix("listening on http://")
            .trim_start_matches("listening on http://")
            .to_owned();
        let load = Load::start(&Config {
            addr,
            workers: 8,
            interval: Duration::from_millis(4),
            paths: vec!["/".into(), "/slow?ms={ms}".into(), "/".into()],
            limit: Duration::from_secs(60),
            seed: run as u64,
        });
        assert!(
            load.wait_answered(200, PATIENCE),
            "run {run}: the server never answered 200 requests"
        );
        let signalled = Instant::now();
        server.signal(Signal::SIGTERM);
        let ended = server.wait();
        let exited = signalled.elapsed();
        let tally = Tally::of(&load.finish(), signalled);
        assert_eq!(ended.code(), Some(0), "run {run}: {ended}");
        assert_eq!(
            tally.failed, 0,
            "run {run}: requests on connections made before the signal failed: {:?}",
            tally.failures
        );
        println!(
            "load run {run:>3}: {:>5} ok ({:>2} in flight at the signal), {} failed, {:>2} retried, {:>3} refused after the signal, exit {:>6.1} ms after SIGTERM",
            tally.ok,
            tally.in_flight,
            tally.failed,
            tally.retried,
            tally.refused_after,
            exited.as_secs_f64() * 1e3
        );
        total.ok += tally.ok;
        total.in_flight += tally.in_flight;
        total.failed += tally.failed;
        total.retried += tally.retried;
        total.refused_after += tally.refused_after;
        exits.push(exited);
    }
    exits.sort();
    println!(
        "load: {runs} runs, {} requests answered ({} in flight at the signal), {} failed, {} keep-alive retries, {} refused after the signal; SIGTERM→exit median {:.1} ms, max {:.1} ms",
        total.ok,
        total.in_flight,
        total.failed,
        total.retried,
        total.refused_after,
        exits[exits.len() / 2].as_secs_f64() * 1e3,
        exits[exits.len() - 1].as_secs_f64() * 1e3
    );
}

/// A temporary project for the manager whose processes carry a marker
/// unique to this run; whatever is left is killed by PID and reaped.
struct Project {
    dir: PathBuf,
    token: String,
    lichtara: PathBuf,
}

const TOKEN_VAR: &str = "LICHTARA_TEST_RUN";

impl Project {
    fn new(lichtara: PathBuf) -> Self {
        // Whatever the manager starts is re-parented here and reaped here.
        nix::sys::prctl::set_child_subreaper(true).expect("become a subreaper");
        let token = format!(
            "restarts-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let dir = std::env::temp_dir().join(format!("lichtara-load-{token}"));
        std::fs::create_dir_all(&dir).expect("create the project directory");
        Self {
            dir,
            token,
            lichtara,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.lichtara)
            .args(args)
            .current_dir(&self.dir)
            .env(TOKEN_VAR, &self.token)
            .stdin(Stdio::null())
            .output()
            .expect("run lichtara")
    }

    /// Live processes carrying this run's marker.
    fn ours(&self) -> Vec<i32> {
        let needle = format!("{TOKEN_VAR}={}", self.token);
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == needle.as_bytes()))
            })
            .filter(|pid| is_live(*pid))
            .collect()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        use nix::sys::wait::{WaitPidFlag, waitpid};
        use nix::unistd::Pid;
        for pid in self.ours() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::empty()));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reaps the stopped servers re-parented to this test, by PID.
fn reap(pid: i32) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
}

fn is_live(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().next())
            .is_some_and(|state| !matches!(state, "Z" | "X"))
    })
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn pid_of(output: &Output) -> i32 {
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid printed:\n{}", text(output)))
}

/// Waits (bounded) until the port accepts; returns how long that took.
fn wait_listening(port: u16) -> Duration {
    let began = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            began.elapsed() < PATIENCE,
            "nothing listened on {port} within {PATIENCE:?}"
        );
        // No event to await for another process's bind: retry, bounded.
        std::thread::sleep(Duration::from_millis(5));
    }
    began.elapsed()
}

/// `count` requests, each on its own connection read to the end (so the
/// server has closed it): quick GETs, every fourth a database insert when
/// `with_db`.
fn serve(port: u16, count: usize, with_db: bool) {
    for index in 0..count {
        let request = if with_db && index % 4 == 3 {
            "POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        } else {
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        };
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.write_all(request.as_bytes()).expect("send");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read to the end");
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 201"),
            "{answer}"
        );
    }
}

/// Open file descriptors and threads of a process.
fn resources(pid: i32) -> (usize, usize) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fds")
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let threads = status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a thread count");
    (fds, threads)
}

/// The resources of `pid` once they are back within `limit`, or as they
/// are after 2 s: the server closes a connection's descriptor a moment
/// after the client has read its end, so a count taken at once can be one
/// high without anything leaking.
fn settled(pid: i32, limit: (usize, usize)) -> (usize, usize) {
    let began = Instant::now();
    loop {
        let now = resources(pid);
        if (now.0 <= limit.0 && now.1 <= limit.1) || began.elapsed() > Duration::from_secs(2) {
            return now;
        }
        // Another process's state: no event to await; retry, bounded.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The manager, built by `cargo test --workspace` next to the server.
fn lichtara_binary() -> PathBuf {
    let path = Path::new(SERVER).with_file_name("lichtara");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --workspace` (or run `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A project whose service is the reference server on a fixed free port.
fn server_project() -> (Project, u16) {
    let project = Project::new(lichtara_binary());
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        project.dir.join("Lichtara.toml"),
        format!(
            "command = [{SERVER:?}, \"--addr\", \"127.0.0.1:{port}\", \"--db\", \"items.sqlite\"]\nstop_timeout = \"20s\"\n"
        ),
    )
    .unwrap();
    (project, port)
}

/// Waits (bounded) until the service's log file holds `needle`.
fn wait_for_log_file(project: &Project, needle: &str) {
    let path = project.dir.join(".lichtara/server.log");
    let began = Instant::now();
    while !std::fs::read_to_string(&path).is_ok_and(|log| log.contains(needle)) {
        assert!(
            began.elapsed() < PATIENCE,
            "no {needle:?} in {} within {PATIENCE:?}",
            path.display()
        );
        // Another process writes the file: no event to await, retry, bounded.
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_server_killed_in_the_middle_of_its_shutdown_starts_again_cleanly() {
    let (project, port) = server_project();
    let started = project.run(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let pid = pid_of(&started);
    wait_listening(port);
    // A request in flight holds the drain open.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /slow?ms=20000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    wait_for_log_file(&project, "slow request started");
    let server = nix::unistd::Pid::from_raw(pid);
    nix::sys::signal::kill(server, Signal::SIGTERM).expect("signal our server");
    wait_for_log_file(&project, "waiting for 1 connections");
    // The crash, in the middle of the shutdown.
    nix::sys::signal::kill(server, Signal::SIGKILL).expect("kill our server");
    nix::sys::wait::waitpid(server, None).expect("reap it");
    drop(slow);

    let status = project.run(&["status"]);
    assert_ne!(status.status.code(), Some(0), "{}", text(&status));
    let again = project.run(&["start"]);
    assert!(again.status.success(), "{}", text(&again));
    let new = pid_of(&again);
    assert_ne!(new, pid);
    wait_listening(port);
    serve(port, 4, true);
    assert_eq!(project.ours(), vec![new], "only the new server runs");
    let stopped = project.run(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    reap(new);
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
}

#[test]
fn restarts_rebind_the_same_port_at_once_and_leave_nothing_behind() {
    let cycles = setting("LICHTARA_RESTART_CYCLES", 5);
    let (project, port) = server_project();
    let started = project.run(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let mut pid = pid_of(&started);
    wait_listening(port);
    let mut rebinds = Vec::new();
    let mut growth = (0, 0);
    for cycle in 1..=cycles {
        // The database pool may open connections (up to its bound) when a
        // request overlaps the return of the last one: warm it up, then
        // measure over requests that do not touch it, where any growth is
        // a leak.
        serve(port, 16, true);
        let warm = resources(pid);
        serve(port, 40, false);
        let served = settled(pid, warm);
        assert!(
            served.0 <= warm.0 && served.1 <= warm.1,
            "cycle {cycle}: (fds, threads) grew from {warm:?} to {served:?} across 40 requests"
        );
        growth = (
            growth.0.max(served.0 as i64 - warm.0 as i64),
            growth.1.max(served.1 as i64 - warm.1 as i64),
        );
        let restarted = project.run(&["restart"]);
        assert!(
            restarted.status.success(),
            "cycle {cycle}: {}",
            text(&restarted)
        );
        let old = pid;
        pid = pid_of(&restarted);
        reap(old);
        assert_ne!(pid, old, "cycle {cycle}");
        assert!(
            !is_live(old),
            "cycle {cycle}: the old server {old} survived"
        );
        rebinds.push(wait_listening(port));
        assert_eq!(
            project.ours(),
            vec![pid],
            "cycle {cycle}: only the new server may carry the marker"
        );
    }
    let stopped = project.run(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    reap(pid);
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
    TcpListener::bind(("127.0.0.1", port)).expect("the port is free after the last stop");
    let log = std::fs::read_to_string(project.dir.join(".lichtara/server.log")).unwrap();
    assert!(
        !log.to_ascii_lowercase().contains("address in use")
            && !log.to_ascii_lowercase().contains("address already in use"),
        "{log}"
    );
    rebinds.sort();
    println!(
        "restarts: {cycles} on port {port}, every one re-bound it (restart returned → port accepting: median {:.1} ms, max {:.1} ms), 0 survivors, fd/thread growth across 40 requests at most {growth:?}",
        rebinds[rebinds.len() / 2].as_secs_f64() * 1e3,
        rebinds[rebinds.len() - 1].as_secs_f64() * 1e3,
    );
}
