//! S8-S10: HTTP under hostile conditions, lichtara's S4 server beside
//! axum's (and beside the baseline build's, with `--baseline DIR`), run
//! after run, each logging as users run it (stderr to a drained pipe):
//!
//! - S8, the keep-alive race: 32 busy keep-alive connections on a fast
//!   route, a client that never retries, SIGTERM in the middle; requests
//!   lost per SIGTERM (on connections made before the signal);
//! - S9, steady state: requests per second under `wrk` (64 connections;
//!   the server pinned to one core, wrk to the other), and the server's
//!   CPU time per request, with the header-read and keep-alive timers on;
//! - S10, out of file descriptors (`RLIMIT_NOFILE` 48, 60 connections):
//!   CPU seconds burned in 3 s, and whether a request is served once the
//!   connections close.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lichtara_tests::load::{Config, Load, Tally};

/// How long a server is given to exit after SIGTERM before it is killed.
const CAP: Duration = Duration::from_secs(10);
const RACE_WORKERS: usize = 32;

struct Server {
    label: String,
    path: PathBuf,
}

/// Runs the sections `wanted` admits (by their names' first word).
pub(super) fn run(
    dir: &Path,
    baseline: Option<&Path>,
    race_runs: usize,
    wanted: &dyn Fn(&str) -> bool,
) {
    if !["S8", "S9", "S10"].into_iter().any(wanted) {
        return;
    }
    let mut servers = vec![Server {
        label: super::LICHTARA.to_owned(),
        path: dir.join("s4_lichtara"),
    }];
    if let Some(before) = baseline {
        servers.push(Server {
            label: format!("{} (baseline)", super::LICHTARA),
            path: before.join("s4_lichtara"),
        });
    }
    servers.push(Server {
        label: "axum 0.8 with_graceful_shutdown".to_owned(),
        path: dir.join("s4_axum"),
    });
    let quick = race_runs < 10;
    if wanted("S8") {
        race(&servers, race_runs);
    }
    if wanted("S9") {
        throughput(&servers, if quick { 1 } else { 30 }, 2);
    }
    if wanted("S10") {
        descriptors(&servers, if quick { 1 } else { 3 });
    }
}

/// Sends SIGTERM to `pid` (a child of ours, not reaped) and reaps it;
/// kills it past [`CAP`]. Returns its exit code, `None` when killed.
fn stop(child: std::process::Child, pid: libc::pid_t) -> Option<i32> {
    // SAFETY: kill(2) on the PID of a child we started and have not reaped.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill failed");
    let (exited_tx, exited) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: wait4 on our own child; this reaps it.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, std::ptr::null_mut()) };
        let _ = exited_tx.send((reaped, status));
    });
    let (code, (reaped, _)) = match exited.recv_timeout(CAP) {
        Ok(exit) => (Some(super::exit_code(exit.1)), exit),
        Err(_) => {
            // SAFETY: our child, not reaped yet (the waiter has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            (None, exited.recv().expect("the waiter"))
        }
    };
    assert_eq!(reaped, pid, "wait4 failed");
    // std's Child must not wait again on a reaped PID.
    std::mem::forget(child);
    code
}

fn race(servers: &[Server], runs: usize) {
    println!(
        "## S8: the keep-alive race: {RACE_WORKERS} busy keep-alive connections on `GET /`, no client retry, SIGTERM in the middle ({runs} runs each)\n"
    );
    let mut lost: Vec<Vec<usize>> = vec![Vec::new(); servers.len()];
    let mut answered = vec![0; servers.len()];
    let mut codes: Vec<Vec<Option<i32>>> = vec![Vec::new(); servers.len()];
    for run in 0..runs {
        for (index, server) in servers.iter().enumerate() {
            let started = super::start(&server.path, &[]);
            let load = Load::start(&Config {
                seed: run as u64 + 1,
                all_keep_alive: true,
                retry: false,
                ..Config::mixed(
                    started.said.clone(),
                    RACE_WORKERS,
                    Duration::ZERO,
                    vec!["/".into()],
                )
            });
            assert!(
                load.wait_answered(RACE_WORKERS * 50, Duration::from_secs(30)),
                "{}: too few answers",
                server.label
            );
            let signalled = Instant::now();
            codes[index].push(stop(started.child, started.pid));
            let tally = Tally::of(&load.finish(), signalled);
            lost[index].push(tally.failed);
            answered[index] += tally.ok;
        }
    }
    println!(
        "| server | requests answered | lost per SIGTERM: mean | median | max | runs with a loss | exit codes |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (index, server) in servers.iter().enumerate() {
        let runs_lost = &lost[index];
        let mut sorted = runs_lost.clone();
        sorted.sort_unstable();
        let mut exit_codes: Vec<String> = codes[index]
            .iter()
            .map(|code| code.map_or("killed".into(), |c| c.to_string()))
            .collect();
        exit_codes.sort();
        exit_codes.dedup();
        println!(
            "| {} | {} | {:.2} | {} | {} | {}/{} | {} |",
            server.label,
            answered[index],
            runs_lost.iter().sum::<usize>() as f64 / runs_lost.len() as f64,
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1],
            runs_lost.iter().filter(|&&n| n > 0).count(),
            runs_lost.len(),
            exit_codes.join(", ")
        );
    }
    println!();
}

/// CPU time (user + system) of a process, in seconds, from /proc.
fn cpu_seconds(pid: libc::pid_t) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read its stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 2..]
        .split(' ')
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Whether `GET /` on a new connection is answered 200 within 10 s.
fn served(addr: &str) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream
        .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut status = String::new();
    BufReader::new(&mut stream)
        .read_line(&mut status)
        .is_ok_and(|_| status.contains(" 200 "))
}

fn descriptors(servers: &[Server], rounds: usize) {
    const LIMIT: libc::rlim_t = 48;
    const CLIENTS: usize = 60;
    println!(
        "## S10: out of file descriptors (RLIMIT_NOFILE {LIMIT}, {CLIENTS} connections held): CPU seconds burned in 3 s ({rounds} rounds)\n"
    );
    println!("| server | round | CPU s in 3 s | served once the connections closed | exit code |");
    println!("|---|---|---|---|---|");
    for round in 1..=rounds {
        for server in servers {
            let mut command = Command::new(&server.path);
            // SAFETY: setrlimit is async-signal-safe; nothing else runs
            // between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    let limit = libc::rlimit {
                        rlim_cur: LIMIT,
                        rlim_max: LIMIT,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
            let started = super::start_command(&server.path, &mut command, super::Logging::Default);
            let clients: Vec<TcpStream> = (0..CLIENTS)
                .filter_map(|_| TcpStream::connect(&started.said).ok())
                .collect();
            // Settling, then the measurement window (figures, not
            // synchronisation).
            std::thread::sleep(Duration::from_millis(500));
            let before = cpu_seconds(started.pid);
            std::thread::sleep(Duration::from_secs(3));
            let burned = cpu_seconds(started.pid) - before;
            drop(clients);
            let again = served(&started.said);
            let code = stop(started.child, started.pid);
            println!(
                "| {} | {round} | {burned:.2} | {} | {} |",
                server.label,
                if again { "yes" } else { "no" },
                code.map_or("killed".into(), |c| c.to_string())
            );
        }
    }
    println!();
}

/// Pins the calling process to one core (between fork and exec).
fn pin_to(core: usize) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and
    // sched_setaffinity get valid pointers to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// What `wrk` measured: requests per second, and requests in all.
fn wrk(addr: &str, seconds: u64, pinned: bool) -> Option<(f64, f64)> {
    let mut command = Command::new("wrk");
    command.args([
        if pinned { "-t1" } else { "-t2" },
        "-c64",
        &format!("-d{seconds}s"),
        &format!("http://{addr}/"),
    ]);
    if pinned {
        // SAFETY: as for the server.
        unsafe {
            command.pre_exec(|| pin_to(1));
        }
    }
    let output = command.output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .lines()
        .find_map(|line| line.strip_prefix("Requests/sec:"))
        .and_then(|value| value.trim().parse().ok())?;
    // "  123456 requests in 5.00s, 12.34MB read"
    let total = text
        .lines()
        .find(|line| line.contains(" requests in "))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|value| value.parse().ok())?;
    Some((rate, total))
}

fn throughput(servers: &[Server], rounds: usize, seconds: u64) {
    println!(
        "## S9: steady state: `wrk -c64 -d{seconds}s` on `GET /` ({rounds} rounds, servers alternating): requests/s, and the server's CPU time per request\n"
    );
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut costs: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    // The server on core 0 with one worker thread, wrk on core 1: two
    // programs that share both cores make the figures swing by a fifth
    // from round to round.
    let pinned = std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2);
    if pinned {
        println!("(the server pinned to core 0 with one worker thread, wrk to core 1)\n");
    }
    for _ in 0..rounds {
        for (index, server) in servers.iter().enumerate() {
            let mut command = Command::new(&server.path);
            if pinned {
                command.env("TOKIO_WORKER_THREADS", "1");
                // SAFETY: sched_setaffinity is async-signal-safe; nothing
                // else runs between fork and exec.
                unsafe {
                    command.pre_exec(|| pin_to(0));
                }
            }
            let started = super::start_command(&server.path, &mut command, super::Logging::Default);
            let before = cpu_seconds(started.pid);
            let measured = wrk(&started.said, seconds, pinned);
            let cpu = cpu_seconds(started.pid) - before;
            stop(started.child, started.pid);
            match measured {
                Some((rate, total)) => {
                    rates[index].push(rate);
                    costs[index].push(cpu / total * 1e6);
                }
                None => {
                    println!("wrk is not installed (`apt-get install wrk`): skipped\n");
                    return;
                }
            }
        }
    }
    println!("| server | requests/s median (min-max) | CPU µs per request median (min-max) |");
    println!("|---|---|---|");
    for (index, server) in servers.iter().enumerate() {
        let (median, min, max) = super::stats(rates[index].clone());
        let (cost, cost_min, cost_max) = super::stats(costs[index].clone());
        println!(
            "| {} | {median:.0} ({min:.0}-{max:.0}) | {cost:.2} ({cost_min:.2}-{cost_max:.2}) |",
            server.label
        );
    }
    let ratio = |ours: &[f64], theirs: &[f64]| {
        super::stats(ours.iter().zip(theirs).map(|(a, b)| a / b).collect())
    };
    for (index, server) in servers.iter().enumerate().skip(1) {
        let (rate, rate_min, rate_max) = ratio(&rates[0], &rates[index]);
        let (cost, cost_min, cost_max) = ratio(&costs[0], &costs[index]);
        println!(
            "\n{} / {}: requests/s x{rate:.3} ({rate_min:.3}-{rate_max:.3}), CPU per request x{cost:.3} ({cost_min:.3}-{cost_max:.3}); medians of round-by-round ratios",
            servers[0].label, server.label
        );
    }
    println!();
}
