//! The reference server under load: no request whose connection was
//! established before SIGTERM is lost. (Its restarts under the manager are
//! in lichtara-cleanup/tests/cli.rs.)
//!
//! Reduced by default (a few runs, in `cargo test --workspace`); the full
//! suite is `bash scripts/stress` (50 runs), which sets
//! `LICHTARA_LOAD_RUNS`. Every figure is printed; only correctness is
//! asserted. Network on 127.0.0.1 only, every loop bounded, every process
//! reaped.

#![cfg(target_os = "linux")]

use std::time::{Duration, Instant};

use lichtara_tests::harness::{PATIENCE, Proc, log_field};
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
        let (mut server, addr) = start_server();
        let load = Load::start(&Config {
            limit: Duration::from_secs(60),
            seed: run as u64,
            ..Config::mixed(
                addr,
                8,
                Duration::from_millis(4),
                vec!["/".into(), "/slow?ms={ms}".into(), "/".into()],
            )
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

/// A field of the server's `drained` log line.
fn drained_field(stderr: &str, name: &str) -> u64 {
    log_field(stderr, " drained ", name)
}

/// Starts the reference server; returns it and its address. In-flight
/// requests are what is checked, not the drain's timeout: far enough away
/// that a loaded machine cannot hit it.
fn start_server() -> (Proc, String) {
    let mut server = Proc::start_with_args(
        SERVER,
        &["--addr", "127.0.0.1:0", "--drain-timeout", "25s"],
        &[],
    );
    let addr = server
        .wait_for_prefix("listening on http://")
        .trim_start_matches("listening on http://")
        .to_owned();
    (server, addr)
}

/// The keep-alive race: every worker keeps its connection busy on a fast
/// route and never retries, so a request the drain closes its connection
/// under counts as failed. The drain closes a keep-alive connection only
/// when nothing is waiting to be read and its last answer is past the
/// drain's grace: no request that reached the server is lost. Counted from
/// both sides: the client's failures, and the server's own count of
/// connections it closed with unread bytes.
#[test]
fn busy_keep_alive_connections_lose_no_request_at_sigterm() {
    let runs = setting("LICHTARA_RACE_RUNS", 30);
    let workers = setting("LICHTARA_RACE_WORKERS", 32);
    let (mut answered, mut failed, mut received, mut closed_idle, mut unread) = (0, 0, 0, 0, 0);
    for run in 1..=runs {
        let (mut server, addr) = start_server();
        let load = Load::start(&Config {
            seed: run as u64,
            all_keep_alive: true,
            retry: false,
            ..Config::mixed(addr, workers, Duration::ZERO, vec!["/".into()])
        });
        assert!(
            load.wait_answered(workers * 20, PATIENCE),
            "run {run}: the server never answered {} requests",
            workers * 20
        );
        let signalled = Instant::now();
        server.signal(Signal::SIGTERM);
        let ended = server.wait();
        let tally = Tally::of(&load.finish(), signalled);
        // What is judged is the HTTP drain; the exit code also carries the
        // later hooks (the SQLite pool's close, whose checkpoint a loaded
        // disk has stretched past its 5 s once in 30 runs).
        let drain = ended
            .stderr
            .lines()
            .find(|line| line.contains("hook finished hook=\"lichtara::http::drain"))
            .unwrap_or_else(|| panic!("run {run}: no drain in the log: {ended}"));
        assert!(
            drain.contains("outcome=\"ok\""),
            "run {run}: {drain}\n{ended}"
        );
        if ended.code() != Some(0) {
            println!(
                "race run {run:>2}: exit {:?} (a later hook; the drain was ok)",
                ended.code()
            );
        }
        let run_unread = drained_field(&ended.stderr, "unread_at_close");
        println!(
            "race run {run:>2}: {:>6} answered, {} failed; server: {:>6} received, {:>2} idle connections closed, {} with unread bytes",
            tally.ok,
            tally.failed,
            drained_field(&ended.stderr, "requests"),
            drained_field(&ended.stderr, "closed_idle"),
            run_unread
        );
        assert_eq!(
            (tally.failed, run_unread),
            (0, 0),
            "run {run}: requests lost at the drain: {:?}\n{}",
            tally.failures,
            ended.stderr
        );
        answered += tally.ok;
        failed += tally.failed;
        received += drained_field(&ended.stderr, "requests");
        closed_idle += drained_field(&ended.stderr, "closed_idle");
        unread += run_unread;
    }
    println!(
        "race: {runs} runs x {workers} busy keep-alive connections, no retries: client {answered} answered, {failed} failed; server {received} received, {closed_idle} idle connections closed, {unread} closed with unread bytes"
    );
}
