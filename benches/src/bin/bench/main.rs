//! The benchmark driver: starts each scenario program as a child process,
//! waits for its READY line, sends SIGTERM with kill(2) and times until the
//! exit is observed (wait4, which also gives peak RSS). Solutions of one
//! scenario run alternately, run by run, so ratios compare neighbours.
//!
//! Programs run as users run them: no `RUST_LOG`, stderr to a pipe the
//! driver drains (as a terminal or journald would take it). lichtara's
//! programs also run quiet (`RUST_LOG=warn`, stderr to `/dev/null`), a
//! variant reported beside the headline.
//!
//! ```text
//! cargo run --release -p lichtara-bench --bin bench            # 7 runs each
//! cargo run --release -p lichtara-bench --bin bench -- --quick # 1 run each, as CI does
//! cargo run --release -p lichtara-bench --bin bench -- S1 --baseline DIR  # one section, beside another build
//! cargo run --release -p lichtara-bench --bin bench -- S1 --runs 30   # more runs of one section
//! ```
//!
//! These are figures, not tests: nothing here asserts a speed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One measured run.
#[derive(Clone, Copy, Debug)]
struct Run {
    to_ready: Duration,
    to_exit: Duration,
    peak_rss_kib: i64,
    exit_code: i32,
    /// Lines the program wrote to stderr (none when quiet).
    log_lines: usize,
    /// write(2) calls it made from SIGTERM to its exit (Linux: from
    /// `/proc/PID/io` `syscw`, read at READY and from the zombie).
    writes: Option<u64>,
}

/// How a program is run: as users run it, or quiet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Logging {
    /// No `RUST_LOG`; stderr to a pipe the driver drains.
    Default,
    /// `RUST_LOG=warn`; stderr to `/dev/null`.
    Quiet,
}

/// A program of one solution.
struct Solution {
    label: &'static str,
    binary: &'static str,
    /// Set in the program's environment (S1's size).
    env: &'static [(&'static str, &'static str)],
}

struct Scenario {
    name: &'static str,
    solutions: &'static [Solution],
    /// S5: a second SIGTERM this long after the first; times are then
    /// counted from the second.
    second_signal: Option<Duration>,
}

const fn solution(label: &'static str, binary: &'static str) -> Solution {
    sized(label, binary, &[])
}

/// A solution run with `env` set (S1's size).
const fn sized(
    label: &'static str,
    binary: &'static str,
    env: &'static [(&'static str, &'static str)],
) -> Solution {
    Solution { label, binary, env }
}

/// S1 at 100,000 units, and at 1,000.
const S1_LARGE: &[(&str, &str)] = &[("S1_UNITS", "100000")];
const S1_SMALL: &[(&str, &str)] = &[("S1_UNITS", "1000")];

const LICHTARA: &str = "lichtara";
/// S1's two lichtara programs: as many hook functions as units, or one
/// resource type with as many managed instances (the hand-rolled program's
/// shape: one cleanup, many units).
const LICHTARA_FNS: &str = "lichtara, one `#[cleanup]` fn per unit";
const LICHTARA_MANAGED: &str = "lichtara, 1 `#[cleanup]` struct, managed instances";
const HAND_ROLLED: &str = "hand-rolled CancellationToken + TaskTracker";
const TGS: &str = "tokio-graceful-shutdown 0.20";

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "S0: no hooks: what the entry point costs before READY",
        solutions: &[
            solution("lichtara, `#[lichtara::main]`", "s0_lichtara"),
            solution("`#[tokio::main]` with a SIGTERM handler", "s0_tokio"),
        ],
        second_signal: None,
    },
    Scenario {
        name: "S1: 10,000 no-op cleanup units",
        solutions: &[
            solution(LICHTARA_FNS, "s1_lichtara"),
            solution(LICHTARA_MANAGED, "s1_lichtara_managed"),
            solution(HAND_ROLLED, "s1_handrolled"),
            solution(TGS, "s1_tgs"),
        ],
        second_signal: None,
    },
    Scenario {
        name: "S1 at 1,000 no-op cleanup units",
        solutions: &[
            solution(LICHTARA_FNS, "s1_lichtara_1k"),
            sized(LICHTARA_MANAGED, "s1_lichtara_managed", S1_SMALL),
            sized(HAND_ROLLED, "s1_handrolled", S1_SMALL),
            sized(TGS, "s1_tgs", S1_SMALL),
        ],
        second_signal: None,
    },
    Scenario {
        // A program with 100,000 distinct hook functions takes many minutes
        // to build; that form's growth is read from 1,000 and 10,000.
        name: "S1 at 100,000 no-op cleanup units",
        solutions: &[
            sized(LICHTARA_MANAGED, "s1_lichtara_managed", S1_LARGE),
            sized(HAND_ROLLED, "s1_handrolled", S1_LARGE),
            sized(TGS, "s1_tgs", S1_LARGE),
        ],
        second_signal: None,
    },
    Scenario {
        name: "S2: 100 units x 100 ms, concurrent (ideal: 100 ms)",
        solutions: &[
            solution(LICHTARA, "s2_lichtara"),
            solution(HAND_ROLLED, "s2_handrolled"),
            solution(TGS, "s2_tgs"),
        ],
        second_signal: None,
    },
    Scenario {
        name: "S3: one unit never finishes, 1 s deadline",
        solutions: &[
            solution(LICHTARA, "s3_lichtara"),
            solution(HAND_ROLLED, "s3_handrolled"),
            solution(TGS, "s3_tgs"),
        ],
        second_signal: None,
    },
    Scenario {
        name: "S5: second SIGTERM 200 ms into a 10 s cleanup (time from the second signal)",
        solutions: &[
            solution(LICHTARA, "s5_lichtara"),
            solution(HAND_ROLLED, "s5_handrolled"),
            solution(TGS, "s5_tgs"),
        ],
        second_signal: Some(Duration::from_millis(200)),
    },
    Scenario {
        name: "S7: a realistic service: 10 hooks in 3 phases of 0-5 ms (ideal: 14 ms)",
        solutions: &[
            solution(LICHTARA, "s7_lichtara"),
            solution("hand-rolled JoinSet per phase", "s7_handrolled"),
            solution(TGS, "s7_tgs"),
        ],
        second_signal: None,
    },
    Scenario {
        name: "S11: 10,000 background tasks waiting for shutdown: spawned before READY, awaited at SIGTERM",
        solutions: &[
            solution("lichtara::spawn (tracked)", "s11_lichtara"),
            solution(
                "tokio::spawn + CancellationToken, handles awaited",
                "s11_tokio",
            ),
        ],
        second_signal: None,
    },
];

/// `--runs N`: runs per solution of the S0-S7 and S11 tables, for a closer look
/// at one change.
fn runs_asked() -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == "--runs")?;
    let runs = args.get(at + 1).and_then(|n| n.parse().ok());
    Some(
        runs.filter(|n| *n > 0)
            .expect("--runs needs a count above 0"),
    )
}

/// `--baseline DIR`: the scenario programs of another build (say, the
/// commit before a change), run beside this build's, alternately, so that
/// a before/after ratio comes from one run.
fn baseline_dir() -> Option<PathBuf> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == "--baseline")?;
    let dir = PathBuf::from(args.get(at + 1).expect("--baseline needs a directory"));
    assert!(
        dir.is_dir(),
        "--baseline {}: not a directory",
        dir.display()
    );
    Some(dir)
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let baseline = baseline_dir();
    let runs = runs_asked().unwrap_or(if quick { 1 } else { 7 });
    let dir = binaries_dir();
    println!("# lichtara benchmarks\n");
    println!(
        "{} run(s) per solution, release build, {} cores; SIGTERM -> exit observed by wait4.\n",
        runs,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    // `bench -- S1 S6` runs only the sections whose names start so (`S1`
    // is not `S10`).
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only: Vec<String> = args
        .iter()
        .enumerate()
        .filter(|(at, arg)| {
            let value = *at > 0 && ["--runs", "--baseline"].contains(&args[at - 1].as_str());
            !arg.starts_with("--") && !value
        })
        .map(|(_, arg)| arg.clone())
        .collect();
    let wanted = |name: &str| {
        only.is_empty()
            || only.iter().any(|o| {
                name.strip_prefix(o.as_str())
                    .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
            })
    };
    assert_eq!(lichtara_bench::s7_ideal_ms(), 14, "S7's title says 14 ms");
    for scenario in SCENARIOS.iter().filter(|s| wanted(s.name)) {
        run_scenario(&dir, baseline.as_deref(), scenario, runs);
    }
    if wanted("S4") {
        http::drain(&dir, runs);
    }
    hostile::run(
        &dir,
        baseline.as_deref(),
        if quick { 3 } else { 30 },
        &wanted,
    );
    // S6 builds crates of its own: minutes, so not in --quick.
    if !quick && wanted("S6") {
        compile::cost();
    }
    if wanted("Manager") {
        manager::stop_latency(&dir, runs);
        manager::stop_descendants(&dir, runs);
        manager::log_throughput(&dir, runs, if quick { 200_000 } else { 2_000_000 });
        manager::cleanup_scan(&dir, if quick { 200 } else { 2_000 });
        manager::reload(&dir, if quick { 3 } else { 100 });
    }
}

mod hostile;

/// S6: what the attribute costs at compile time, and what the runtime adds
/// to a binary. Crates are generated outside the workspace and built with
/// a target directory of their own; each is built once to compile its
/// dependencies, then touched and built again: that second build is timed.
mod compile {
    use std::fmt::Write as _;
    use std::path::{Path, PathBuf};
    use std::process::Command;
    use std::time::Instant;

    const HOOKS: usize = 1_000;

    fn workspace_root() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root")
            .to_path_buf()
    }

    fn write_crate(root: &Path, name: &str, deps: &str, main: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("src")).expect("create a crate");
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\n{deps}\n\n[workspace]\n"),
        )
        .expect("write Cargo.toml");
        std::fs::write(dir.join("src/main.rs"), main).expect("write main.rs");
        dir
    }

    /// Builds `dir` in release with incremental compilation off; returns
    /// the seconds the build of the crate itself took.
    fn timed_build(dir: &Path, target: &Path) -> f64 {
        let build = || {
            let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "-q", "--release"])
                .current_dir(dir)
                .env("CARGO_TARGET_DIR", target)
                .env("CARGO_INCREMENTAL", "0")
                .status()
                .expect("run cargo build");
            assert!(status.success(), "building {} failed", dir.display());
        };
        build();
        let main = dir.join("src/main.rs");
        let text = std::fs::read_to_string(&main).unwrap();
        std::fs::write(&main, text).unwrap();
        let started = Instant::now();
        build();
        started.elapsed().as_secs_f64()
    }

    pub(super) fn cost() {
        let root = workspace_root();
        let lichtara = root.join("lichtara-cleanup");
        let scratch = root.join("target").join("bench-s6");
        let target = scratch.join("target");
        let lichtara_dep = format!(
            "lichtara-cleanup = {{ path = {:?} }}\ntokio = {{ version = \"1\", features = [\"rt-multi-thread\", \"macros\"] }}",
            lichtara.display().to_string()
        );
        let tokio_dep = "tokio = { version = \"1\", features = [\"rt-multi-thread\", \"macros\"] }";

        let mut with = String::new();
        let mut without = String::new();
        // The same functions run from a hand-written list at the end of
        // `main`: what registering them costs without the attribute.
        let mut by_hand = String::from(
            "type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;\n",
        );
        let mut list = String::new();
        for n in 0..HOOKS {
            writeln!(
                by_hand,
                "async fn hook_{n}() {{}}\nfn run_{n}() -> BoxFuture {{ Box::pin(hook_{n}()) }}"
            )
            .unwrap();
            write!(list, "run_{n}, ").unwrap();
        }
        writeln!(
            by_hand,
            "\n#[tokio::main]\nasync fn main() {{\n    let hooks: [fn() -> BoxFuture; {HOOKS}] = [{list}];\n    for hook in hooks {{\n        hook().await;\n    }}\n}}"
        )
        .unwrap();
        for n in 0..HOOKS {
            writeln!(
                with,
                "#[lichtara::cleanup(order = {}, timeout = \"5s\")]\nasync fn hook_{n}() {{}}",
                n % 7
            )
            .unwrap();
            writeln!(without, "#[allow(dead_code)]\nasync fn hook_{n}() {{}}").unwrap();
        }
        with.push_str("\n#[lichtara::main]\nasync fn main() {}\n");
        without.push_str("\n#[tokio::main]\nasync fn main() {}\n");
        let with_dir = write_crate(&scratch, "s6_with_attribute", &lichtara_dep, &with);
        let without_dir = write_crate(&scratch, "s6_without_attribute", &lichtara_dep, &without);
        let by_hand_dir = write_crate(&scratch, "s6_by_hand", &lichtara_dep, &by_hand);
        let attribute = timed_build(&with_dir, &target);
        let plain = timed_build(&without_dir, &target);
        let hand = timed_build(&by_hand_dir, &target);

        let hello_lichtara = write_crate(
            &scratch,
            "s6_hello_lichtara",
            &lichtara_dep,
            "#[lichtara::main]\nasync fn main() {\n    println!(\"hello\");\n}\n",
        );
        let hello_tokio = write_crate(
            &scratch,
            "s6_hello_tokio",
            tokio_dep,
            "#[tokio::main]\nasync fn main() {\n    println!(\"hello\");\n}\n",
        );
        timed_build(&hello_lichtara, &target);
        timed_build(&hello_tokio, &target);
        let size = |name: &str| {
            std::fs::metadata(target.join("release").join(name)).map_or(0, |m| m.len())
        };
        let (lichtara_size, tokio_size) = (size("s6_hello_lichtara"), size("s6_hello_tokio"));

        println!("## S6: compile cost and binary size\n");
        println!("| what | figure |");
        println!("|---|---|");
        println!(
            "| build of {HOOKS} `#[lichtara::cleanup]` async fns (release, incremental off) | {attribute:.2} s |"
        );
        println!("| build of the same {HOOKS} fns without the attribute | {plain:.2} s |");
        println!("| ratio | x{:.2} |", attribute / plain);
        println!(
            "| build of the same {HOOKS} fns run from a hand-written list (boxed, no attribute) | {hand:.2} s |"
        );
        println!(
            "| attribute / hand-written list | x{:.2} |",
            attribute / hand
        );
        println!(
            "| hello with `#[lichtara::main]` | {:.2} MiB |",
            lichtara_size as f64 / 1048576.0
        );
        println!(
            "| hello with `#[tokio::main]` | {:.2} MiB |",
            tokio_size as f64 / 1048576.0
        );
        println!(
            "| growth | {:+.0} % |\n",
            (lichtara_size as f64 / tokio_size as f64 - 1.0) * 100.0
        );
    }
}

/// The `lichtara` CLI's figures.
mod manager;

/// S4: an HTTP server with 500 idle keep-alive connections and 100
/// requests of 500 ms in flight gets SIGTERM 100 ms after they were sent;
/// a variant adds one request that never ends.
mod http {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::path::Path;
    use std::sync::{Arc, Barrier, mpsc};
    use std::time::{Duration, Instant};

    const IDLE: usize = 500;
    const IN_FLIGHT: usize = 100;
    /// How long the variant with a never-ending request is given to exit.
    const CAP: Duration = Duration::from_secs(5);

    struct Run {
        answered: usize,
        probe_refused: bool,
        to_exit: Option<Duration>,
        after_last: Option<Duration>,
        exit_code: Option<i32>,
    }

    /// Reads one answer; whether it is a 200.
    fn answer(reader: &mut BufReader<TcpStream>) -> bool {
        let mut status = String::new();
        if reader.read_line(&mut status).unwrap_or(0) == 0 {
            return false;
        }
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return false;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(value) = line.strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).is_ok() && status.contains(" 200 ")
    }

    fn measure(binary: &Path, never_ending: bool) -> Run {
        let super::Started {
            child,
            pid,
            said: addr,
            _stdout,
            ..
        } = super::start(binary, &[]);
        let connect = || {
            let stream = TcpStream::connect(&addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            BufReader::new(stream)
        };
        let idle: Vec<_> = (0..IDLE)
            .map(|_| {
                let mut reader = connect();
                reader
                    .get_mut()
                    .write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                    .unwrap();
                assert!(answer(&mut reader), "an idle connection's first request");
                reader
            })
            .collect();
        let total = IN_FLIGHT + usize::from(never_ending);
        let go = Arc::new(Barrier::new(total + 1));
        let requests: Vec<_> = (0..total)
            .map(|index| {
                let mut reader = connect();
                let go = go.clone();
                let ms = if index == IN_FLIGHT { 3_600_000 } else { 500 };
                std::thread::spawn(move || {
                    go.wait();
                    let request = format!("GET /slow?ms={ms} HTTP/1.1\r\nHost: bench\r\n\r\n");
                    reader.get_mut().write_all(request.as_bytes()).unwrap();
                    let ok = answer(&mut reader);
                    (index < IN_FLIGHT && ok).then(Instant::now)
                })
            })
            .collect();
        go.wait();
        std::thread::sleep(Duration::from_millis(100));
        let signalled = Instant::now();
        // SAFETY: kill(2) on the PID of a child this function started and
        // has not reaped.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill failed");
        let (exited_tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let mut status = 0;
            // SAFETY: wait4 on our own child; this reaps it.
            let reaped = unsafe { libc::wait4(pid, &mut status, 0, std::ptr::null_mut()) };
            let _ = exited_tx.send((reaped, status, Instant::now()));
        });
        std::thread::sleep(Duration::from_millis(50));
        let probe_refused = TcpStream::connect(&addr).is_err();
        let (exit, capped) = match exited.recv_timeout(CAP) {
            Ok(exit) => (exit, false),
            Err(_) => {
                // SAFETY: our child, not reaped yet (the waiter has not
                // returned).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                (exited.recv().expect("the waiter"), true)
            }
        };
        let (reaped, status, exited_at) = exit;
        assert_eq!(reaped, pid, "wait4 failed");
        std::mem::forget(child);
        drop(idle);
        let answered: Vec<Instant> = requests
            .into_iter()
            .filter_map(|request| request.join().expect("a request thread"))
            .collect();
        let last = answered.iter().max().copied();
        Run {
            answered: answered.len(),
            probe_refused,
            to_exit: (!capped).then(|| exited_at - signalled),
            after_last: last
                .filter(|_| !capped)
                .map(|last| exited_at.saturating_duration_since(last)),
            exit_code: (!capped).then(|| super::exit_code(status)),
        }
    }

    fn millis(value: Option<Duration>) -> String {
        value.map_or_else(
            || format!("no exit within {} s", CAP.as_secs()),
            |d| format!("{:.1} ms", d.as_secs_f64() * 1e3),
        )
    }

    pub(super) fn drain(dir: &Path, runs: usize) {
        let solutions = [
            (super::LICHTARA, "s4_lichtara"),
            ("axum 0.8 with_graceful_shutdown", "s4_axum"),
        ];
        for never_ending in [false, true] {
            if never_ending {
                println!(
                    "## S4b: as S4, plus one request that never ends (lichtara's drain timeout: 2 s; runs capped at {} s)\n",
                    CAP.as_secs()
                );
            } else {
                println!(
                    "## S4: {IDLE} idle keep-alive connections + {IN_FLIGHT} requests of 500 ms in flight, SIGTERM 100 ms in\n"
                );
            }
            println!(
                "| solution | run | answered | probe refused | SIGTERM -> exit | exit - last response | exit code |"
            );
            println!("|---|---|---|---|---|---|---|");
            let mut medians = Vec::new();
            for (label, binary) in solutions {
                let mut after = Vec::new();
                for run in 1..=runs {
                    let measured = measure(&dir.join(binary), never_ending);
                    println!(
                        "| {label} | {run} | {}/{IN_FLIGHT} | {} | {} | {} | {} |",
                        measured.answered,
                        if measured.probe_refused { "yes" } else { "no" },
                        millis(measured.to_exit),
                        measured
                            .after_last
                            .map_or("-".into(), |d| format!("{:.2} ms", d.as_secs_f64() * 1e3)),
                        measured
                            .exit_code
                            .map_or("killed".into(), |code| code.to_string()),
                    );
                    if let Some(d) = measured.after_last {
                        after.push(d.as_secs_f64() * 1e3);
                    }
                }
                if !after.is_empty() {
                    medians.push((label, super::stats(after).0));
                }
            }
            for (label, median) in medians {
                println!("\n{label}: exit - last response, median {median:.2} ms");
            }
            println!();
        }
    }
}

/// Where the scenario programs are: beside this driver. Under `cargo run`,
/// build them first so the one command does everything.
fn binaries_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().expect("exe dir").to_path_buf();
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile = if dir.ends_with("release") {
            "--release"
        } else {
            "--profile=dev"
        };
        let status = Command::new(cargo)
            .args(["build", "-q", profile, "-p", "lichtara-bench", "--bins"])
            .args([
                "-p",
                "lichtara-cleanup",
                "--features",
                "lichtara-cleanup/cli",
            ])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the scenario programs failed");
    }
    dir
}

/// One program of a scenario as this run measures it.
struct Entry {
    /// The solution's label.
    solution: &'static str,
    path: PathBuf,
    env: &'static [(&'static str, &'static str)],
    /// lichtara, from the baseline build: compared with, like a peer.
    baseline: bool,
    logging: Logging,
}

impl Entry {
    fn lichtara(&self) -> bool {
        self.solution.starts_with(LICHTARA)
    }

    fn ours(&self) -> bool {
        self.lichtara() && !self.baseline
    }

    fn label(&self) -> String {
        let mut label = self.solution.to_owned();
        if self.baseline {
            label.push_str(" (baseline)");
        }
        if self.logging == Logging::Quiet {
            label.push_str(" (quiet)");
        }
        label
    }
}

fn run_scenario(dir: &Path, baseline: Option<&Path>, scenario: &Scenario, runs: usize) {
    let mut entries = Vec::new();
    for solution in scenario.solutions {
        let lichtara = solution.label.starts_with(LICHTARA);
        let builds = std::iter::once((dir, false))
            .chain(baseline.filter(|_| lichtara).map(|before| (before, true)));
        for (build, is_baseline) in builds {
            // lichtara logs; its peers install no subscriber, and are the
            // same either way.
            let variants: &[Logging] = if lichtara {
                &[Logging::Default, Logging::Quiet]
            } else {
                &[Logging::Default]
            };
            for &logging in variants {
                entries.push(Entry {
                    solution: solution.label,
                    path: build.join(solution.binary),
                    env: solution.env,
                    baseline: is_baseline,
                    logging,
                });
            }
        }
    }
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); entries.len()];
    for _ in 0..runs {
        for (index, entry) in entries.iter().enumerate() {
            results[index].push(measure(
                &entry.path,
                entry.env,
                entry.logging,
                scenario.second_signal,
            ));
        }
    }
    println!("## {}\n", scenario.name);
    println!(
        "| solution | SIGTERM -> exit median (min-max) | peak RSS median | to READY median | stderr lines | writes after SIGTERM | exit codes |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (entry, runs) in entries.iter().zip(&results) {
        let exit = stats(
            runs.iter()
                .map(|r| r.to_exit.as_secs_f64() * 1000.0)
                .collect(),
        );
        let rss = stats(
            runs.iter()
                .map(|r| r.peak_rss_kib as f64 / 1024.0)
                .collect(),
        );
        let ready = stats(
            runs.iter()
                .map(|r| r.to_ready.as_secs_f64() * 1000.0)
                .collect(),
        );
        let mut codes: Vec<i32> = runs.iter().map(|r| r.exit_code).collect();
        codes.dedup();
        let lines = stats(runs.iter().map(|r| r.log_lines as f64).collect()).0;
        let writes = runs
            .iter()
            .map(|r| r.writes.map(|w| w as f64))
            .collect::<Option<Vec<f64>>>()
            .map_or_else(|| "-".to_owned(), |w| format!("{:.0}", stats(w).0));
        println!(
            "| {} | {:.2} ms ({:.2}-{:.2}) | {:.1} MiB | {:.2} ms | {lines:.0} | {writes} | {:?} |",
            entry.label(),
            exit.0,
            exit.1,
            exit.2,
            rss.0,
            ready.0,
            codes
        );
    }
    for (lichtara, base) in entries.iter().zip(&results) {
        if lichtara.ours() {
            print_ratios(lichtara, base, &entries, &results);
        }
    }
    println!();
}

/// lichtara's figures over each peer's (and the baseline's), run by run.
fn print_ratios(lichtara: &Entry, base: &[Run], entries: &[Entry], results: &[Vec<Run>]) {
    for (entry, runs) in entries.iter().zip(results) {
        // Against the peers, and against the baseline of the same program
        // run the same way.
        let compared = if entry.lichtara() {
            entry.baseline
                && entry.solution == lichtara.solution
                && entry.logging == lichtara.logging
        } else {
            true
        };
        if !compared {
            continue;
        }
        let exit = stats(
            base.iter()
                .zip(runs)
                .map(|(a, b)| a.to_exit.as_secs_f64() / b.to_exit.as_secs_f64())
                .collect(),
        );
        let rss = stats(
            base.iter()
                .zip(runs)
                .map(|(a, b)| a.peak_rss_kib as f64 / b.peak_rss_kib as f64)
                .collect(),
        );
        let ready = stats(
            base.iter()
                .zip(runs)
                .map(|(a, b)| a.to_ready.as_secs_f64() / b.to_ready.as_secs_f64())
                .collect(),
        );
        // What the program holds beyond its peer's, per unit, where the
        // scenario has many (S1).
        let units = units_of(lichtara.env, &lichtara.path);
        let per_unit = units.map_or_else(String::new, |units| {
            let a = stats(base.iter().map(|r| r.peak_rss_kib as f64).collect()).0;
            let b = stats(runs.iter().map(|r| r.peak_rss_kib as f64).collect()).0;
            format!(" ({:+.2} KiB a unit)", (a - b) / units as f64)
        });
        println!(
            "\n{} / {}: exit time x{:.2} (median of run-by-run ratios, {:.2}-{:.2}), peak RSS x{:.2}{per_unit}, to READY x{:.2}",
            lichtara.label(),
            entry.label(),
            exit.0,
            exit.1,
            exit.2,
            rss.0,
            ready.0
        );
    }
}

/// How many S1 units a program of S1 runs, from its environment or its
/// name; `None` for the other scenarios.
fn units_of(env: &[(&str, &str)], path: &Path) -> Option<usize> {
    let name = path.file_name()?.to_str()?;
    if !name.starts_with("s1_") {
        return None;
    }
    if let Some((_, units)) = env.iter().find(|(key, _)| *key == "S1_UNITS") {
        return units.parse().ok();
    }
    Some(if name.ends_with("_1k") { 1_000 } else { 10_000 })
}

/// Median, min, max.
fn stats(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    (median, values[0], values[values.len() - 1])
}

/// A scenario program that has said `READY`.
struct Started {
    child: std::process::Child,
    pid: libc::pid_t,
    /// What followed `READY ` on its line (S4's address).
    said: String,
    /// From spawn to `READY`.
    ready: Duration,
    /// Held open: the program may still write.
    _stdout: std::io::Lines<BufReader<std::process::ChildStdout>>,
    /// Drains the program's stderr; ends with the lines read when the
    /// program has closed it. `None` when quiet.
    log: Option<std::thread::JoinHandle<usize>>,
}

impl Started {
    /// The lines the program wrote to stderr, once it has ended.
    fn log_lines(&mut self) -> usize {
        self.log
            .take()
            .map_or(0, |log| log.join().expect("the stderr drain"))
    }
}

/// Starts a scenario program as users run it and waits for its `READY`
/// line.
fn start(binary: &Path, env: &[(&str, &str)]) -> Started {
    start_command(
        binary,
        Command::new(binary).envs(env.iter().copied()),
        Logging::Default,
    )
}

/// As [`start`], for a command set up by the caller (S10's descriptor
/// limit), run as `logging` says.
fn start_command(binary: &Path, command: &mut Command, logging: Logging) -> Started {
    match logging {
        Logging::Default => command.env_remove("RUST_LOG").stderr(Stdio::piped()),
        Logging::Quiet => command.env("RUST_LOG", "warn").stderr(Stdio::null()),
    };
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
    let pid = child.id() as libc::pid_t;
    let log = child.stderr.take().map(|stderr| {
        std::thread::spawn(move || {
            // Read as a terminal would: everything, as it comes.
            BufReader::new(stderr).lines().map_while(Result::ok).count()
        })
    });
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line == "READY" || line.starts_with("READY ") => {
                return Started {
                    child,
                    pid,
                    said: line["READY".len()..].trim().to_owned(),
                    ready: started.elapsed(),
                    _stdout: lines,
                    log,
                };
            }
            Some(Ok(_)) => continue,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} ended before READY", binary.display());
            }
        }
    }
}

/// The exit code a shell would show for a wait status: 128 + N when
/// killed by signal N.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// The write(2) calls `pid` has made so far (`syscw` of `/proc/PID/io`),
/// where the system says.
fn writes_of(pid: libc::pid_t) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|line| line.strip_prefix("syscw:"))
        .and_then(|count| count.trim().parse().ok())
}

fn measure(
    binary: &Path,
    env: &[(&str, &str)],
    logging: Logging,
    second_signal: Option<Duration>,
) -> Run {
    let mut started = start_command(
        binary,
        Command::new(binary).envs(env.iter().copied()),
        logging,
    );
    let (pid, ready) = (started.pid, started.ready);
    let writes_at_ready = writes_of(pid);
    let mut signalled = Instant::now();
    // SAFETY: kill(2) on the PID of a child this function started and has
    // not reaped.
    let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
    assert_eq!(sent, 0, "kill failed");
    if let Some(after) = second_signal {
        std::thread::sleep(after);
        signalled = Instant::now();
        // SAFETY: as above; the child cannot have been reaped: only the
        // wait4 below reaps it.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill failed");
    }
    // Seen exited (a zombie, its counters still readable), then reaped.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own child with a valid out-pointer; WNOWAIT
    // leaves it to be reaped below.
    let waited = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        )
    };
    let to_exit = signalled.elapsed();
    assert_eq!(waited, 0, "waitid failed");
    let writes = writes_at_ready
        .zip(writes_of(pid))
        .map(|(before, after)| after.saturating_sub(before));
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid out-pointers; this reaps it.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4 failed");
    let exit_code = exit_code(status);
    let log_lines = started.log_lines();
    // std's Child must not wait again on a reaped PID; forget the handle.
    std::mem::forget(started.child);
    Run {
        to_ready: ready,
        to_exit,
        peak_rss_kib: usage.ru_maxrss,
        exit_code,
        log_lines,
        writes,
    }
}
