//! The manager's figures: `lichtara stop` latency, a stop with many
//! descendants, log throughput, the orphan scan; and (`reload`) reloads and
//! restarts under load.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A temporary project directory, removed on drop.
struct TempProject(PathBuf);

impl TempProject {
    fn new(label: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("lichtara-bench-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a project directory");
        Self(dir)
    }
}

impl Drop for TempProject {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `lichtara ARGS` in `project`, its cgroups under `cgroups`.
fn lichtara(
    dir: &Path,
    project: &TempProject,
    cgroups: &CgroupBase,
    args: &[&str],
) -> (Duration, std::process::Output) {
    let started = Instant::now();
    let output = Command::new(dir.join("lichtara"))
        .args(args)
        .current_dir(&project.0)
        .env("LICHTARA_CGROUP_BASE", cgroups.path())
        .stdin(Stdio::null())
        .output()
        .expect("run lichtara");
    (started.elapsed(), output)
}

/// `lichtara stop` of a server that dies at SIGTERM: the whole stop,
/// from the command's start to its return.
pub(super) fn stop_latency(dir: &Path, runs: usize) {
    let project = TempProject::new("stop");
    let cgroups = CgroupBase::new();
    let mut times = Vec::new();
    for _ in 0..runs.max(3) {
        let (_, started) = lichtara(dir, &project, &cgroups, &["start", "--", "sleep", "1000"]);
        assert!(started.status.success(), "start failed: {started:?}");
        let (elapsed, stopped) = lichtara(dir, &project, &cgroups, &["stop"]);
        assert!(stopped.status.success(), "stop failed: {stopped:?}");
        times.push(elapsed.as_secs_f64() * 1000.0);
    }
    let (median, min, max) = super::stats(times);
    println!("## Manager: `lichtara stop` of a server that exits at SIGTERM\n");
    println!("stop returns in {median:.2} ms median ({min:.2}-{max:.2}), whole command included\n");
}

/// This run's own cgroup subtree, where a writable cgroup v2 exists
/// (found in /proc/self/mountinfo): the manager makes its cgroups
/// under it, and it is emptied and removed on drop.
struct CgroupBase(Option<PathBuf>);

impl CgroupBase {
    fn new() -> Self {
        let mount = std::fs::read_to_string("/proc/self/mountinfo")
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let fields: Vec<&str> = line.split_whitespace().collect();
                    let separator = fields.iter().position(|field| *field == "-")?;
                    let mount = fields.get(4)?;
                    (fields.get(separator + 1) == Some(&"cgroup2")).then(|| PathBuf::from(mount))
                })
            });
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "lichtara-bench-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let base = mount
            .map(|mount| mount.join(name))
            .filter(|base| std::fs::create_dir(base).is_ok());
        Self(base)
    }

    /// The base for `LICHTARA_CGROUP_BASE`: without a writable cgroup
    /// v2, a path that cannot be one, so that the manager says so.
    fn path(&self) -> PathBuf {
        self.0
            .clone()
            .unwrap_or_else(|| PathBuf::from("/proc/lichtara-bench-no-cgroup"))
    }
}

impl Drop for CgroupBase {
    fn drop(&mut self) {
        let Some(base) = &self.0 else { return };
        let _ = std::fs::write(base.join("cgroup.kill"), "1");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until
            && !std::fs::read_to_string(base.join("cgroup.events"))
                .map_or(true, |events| events.contains("populated 0"))
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // <base>/<project id>/<name>/g<N>: deepest first.
        remove_tree(base);
    }
}

fn remove_tree(dir: &Path) {
    for below in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if below.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_tree(&below.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// `lichtara stop` of a service with 50 descendants (all exit at
/// SIGTERM), contained by a cgroup and by its group and marker only,
/// alternately, run by run.
pub(super) fn stop_descendants(dir: &Path, runs: usize) {
    const DESCENDANTS: usize = 50;
    let cgroups = CgroupBase::new();
    let project = TempProject::new("stop50");
    // It prints `forked 50` once it has forked them all: a text its command
    // line (which the supervisor's `started` line holds) does not contain,
    // and that needs no line of its own: the service's output can come
    // before that line.
    let script =
        format!("for i in $(seq {DESCENDANTS}); do sleep 1000 & done; echo forked $i; wait");
    let forked = format!("forked {DESCENDANTS}\n");
    let modes: [(&str, Option<&Path>); 2] = [
        ("cgroup v2", cgroups.0.as_deref()),
        ("process group + marker", None),
    ];
    let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..runs.max(3) {
        for (index, (_, base)) in modes.iter().enumerate() {
            if index == 0 && base.is_none() {
                continue;
            }
            let base = base.map_or_else(
                || PathBuf::from("/proc/lichtara-bench-no-cgroup"),
                Path::to_path_buf,
            );
            let run = |args: &[&str]| {
                let started = Instant::now();
                let output = Command::new(dir.join("lichtara"))
                    .args(args)
                    .current_dir(&project.0)
                    .env("LICHTARA_CGROUP_BASE", &base)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run lichtara");
                assert!(output.status.success(), "{args:?} failed: {output:?}");
                started.elapsed()
            };
            let _ = std::fs::remove_file(project.0.join(".lichtara/server.log"));
            run(&["start", "--", "sh", "-c", &script]);
            let log = project.0.join(".lichtara/server.log");
            let record = project.0.join(".lichtara/server.pid");
            // Woken by the log's changes; no deadline: the record goes if
            // the service ends without saying it.
            lichtara_tests::managed::wait_for_text(&log, &forked, || record.exists());
            times[index].push(run(&["stop"]).as_secs_f64() * 1000.0);
        }
    }
    println!(
        "## Manager: `lichtara stop` of a service with {DESCENDANTS} descendants, by containment\n"
    );
    println!("| containment | stop, median (min-max) |\n|---|---|");
    for (index, (label, _)) in modes.iter().enumerate() {
        if times[index].is_empty() {
            println!("| {label} | not measured: no writable cgroup v2 here |");
            continue;
        }
        let (median, min, max) = super::stats(times[index].clone());
        println!("| {label} | {median:.2} ms ({min:.2}-{max:.2}) |");
    }
    if !times[0].is_empty() {
        let ratio = super::stats(times[0].clone()).0 / super::stats(times[1].clone()).0;
        println!("\ncgroup / group + marker: {ratio:.2}x");
    }
    println!();
}

/// Log throughput: `seq` writes `lines` lines of 61 bytes, timed by
/// the shell around it, straight into a file, and into the pipe that
/// the supervisor reads and writes (and rotates, at the default 10 MiB)
/// into the log; alternately, run by run. Through the pipe the writer
/// finishes at most one pipe buffer (64 KiB) ahead of the log.
pub(super) fn log_throughput(dir: &Path, runs: usize, lines: usize) {
    let project = TempProject::new("logs");
    let cgroups = CgroupBase::new();
    let timed = |target: &str| {
        format!(
            "a=$(date +%s%N); seq -f %060g 1 {lines}{target}; b=$(date +%s%N); echo elapsed $((b - a))"
        )
    };
    let mut direct = Vec::new();
    let mut supervised = Vec::new();
    for _ in 0..runs.max(3) {
        let out = project.0.join("direct.log");
        let output = Command::new("sh")
            .arg("-c")
            .arg(timed(&format!(" > '{}'", out.display())))
            .output()
            .expect("run the writer");
        let _ = std::fs::remove_file(&out);
        direct.push(elapsed_ns(&String::from_utf8_lossy(&output.stdout)));

        let _ = std::fs::remove_dir_all(project.0.join(".lichtara"));
        let script = format!("{}; exec sleep 1000", timed(""));
        let (_, started) = lichtara(
            dir,
            &project,
            &cgroups,
            &["start", "--", "sh", "-c", &script],
        );
        assert!(started.status.success(), "start failed: {started:?}");
        let log = project.0.join(".lichtara/server.log");
        // Its end, looked for in the log's tail (a few KiB, every 5 ms:
        // waking at each of the writer's writes would compete with it).
        // No deadline: the service's record goes if it ends without its
        // line, and that ends the wait.
        let record = project.0.join(".lichtara/server.pid");
        let said = loop {
            let tail = tail_of(&log);
            if let Some(line) = tail.lines().find(|line| line.starts_with("elapsed ")) {
                break line.to_owned();
            }
            assert!(record.exists(), "the writer ended without its line: {tail}");
            std::thread::sleep(Duration::from_millis(5));
        };
        supervised.push(elapsed_ns(&said));
        let (_, stopped) = lichtara(dir, &project, &cgroups, &["stop"]);
        assert!(stopped.status.success(), "stop failed: {stopped:?}");
    }
    let rate = |seconds: f64| lines as f64 / seconds / 1e6;
    let (d, d_min, d_max) = super::stats(direct);
    let (p, p_min, p_max) = super::stats(supervised);
    println!("## Manager: log throughput, {lines} lines of 61 bytes\n");
    println!("| the service writes | lines/s, median (min-max) |\n|---|---|");
    println!(
        "| straight to a file | {:.2} M ({:.2}-{:.2}) |",
        rate(d),
        rate(d_max),
        rate(d_min)
    );
    println!(
        "| to its supervisor (pipe, capped and rotated log) | {:.2} M ({:.2}-{:.2}) |",
        rate(p),
        rate(p_max),
        rate(p_min)
    );
    println!("\nsupervised / straight to a file: {:.2}x\n", d / p);
}

/// Seconds, from the writer's `elapsed <nanoseconds>`.
fn elapsed_ns(said: &str) -> f64 {
    said.trim()
        .strip_prefix("elapsed ")
        .and_then(|ns| ns.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("the writer said {said:?}"))
        / 1e9
}

/// The last 4 KiB of a file (empty if it is not there yet).
fn tail_of(path: &Path) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let length = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(length.saturating_sub(4096)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    text
}

/// `lichtara cleanup --dry-run` with `count` unrelated processes
/// running (started here, killed and reaped here).
pub(super) fn cleanup_scan(dir: &Path, count: usize) {
    let project = TempProject::new("cleanup");
    let cgroups = CgroupBase::new();
    let mut others: Vec<Child> = (0..count)
        .map(|_| {
            Command::new("sleep")
                .arg("1000")
                .stdin(Stdio::null())
                .spawn()
                .expect("start an unrelated process")
        })
        .collect();
    let mut times = Vec::new();
    for _ in 0..3 {
        let (elapsed, output) = lichtara(dir, &project, &cgroups, &["cleanup", "--dry-run"]);
        assert!(output.status.success(), "cleanup failed: {output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("no orphaned processes"));
        times.push(elapsed.as_secs_f64() * 1000.0);
    }
    for child in &mut others {
        let _ = child.kill();
    }
    for child in &mut others {
        let _ = child.wait();
    }
    let (median, min, max) = super::stats(times);
    println!("## Manager: `lichtara cleanup --dry-run` with {count} unrelated processes\n");
    println!("{median:.1} ms median ({min:.1}-{max:.1}); none of them listed\n");
}

/// `lichtara reload` against `restart` of the same server (S4's lichtara
/// server, release build) under steady load: 8 workers, half on
/// keep-alive connections, a request every 2 ms each, judged request by
/// request. Three ways, `cycles` times each: reload (held listeners, the
/// new generation ready before the old one stops), restart with held
/// listeners (the old one stops, then the new one starts; the backlog
/// waits), restart without (stop, then start: nothing listens between).
pub(super) fn reload(dir: &Path, cycles: usize) {
    println!("## Manager: reload against restart under load ({cycles} each)\n");
    println!(
        "| way | requests answered | refused | failed | retried | command median (max) | new ready after, median |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (way, held, verb) in [
        ("`reload` (held listeners)", true, "reload"),
        ("`restart` (held listeners)", true, "restart"),
        ("`restart` (no declared listeners)", false, "restart"),
    ] {
        let project = TempProject::new("reload");
        let cgroups = CgroupBase::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let server = dir.join("s4_lichtara");
        let mut settings = format!(
            "command = [{server:?}, \"127.0.0.1:{port}\"]\nstop_timeout = \"20s\"\nready = \"notify\"\n"
        );
        if held {
            settings.push_str(&format!("listen = {{ http = \"127.0.0.1:{port}\" }}\n"));
        }
        std::fs::write(project.0.join("Lichtara.toml"), settings).expect("write Lichtara.toml");
        let (_, started) = lichtara(dir, &project, &cgroups, &["start"]);
        assert!(started.status.success(), "start failed: {started:?}");
        let load = lichtara_tests::load::Load::start(&lichtara_tests::load::Config::mixed(
            format!("127.0.0.1:{port}"),
            8,
            Duration::from_millis(2),
            vec!["/".into(), "/".into(), "/slow?ms={ms}".into()],
        ));
        load.answered(100);
        let mut took = Vec::new();
        let mut ready = Vec::new();
        for _ in 0..cycles {
            let (elapsed, output) = lichtara(dir, &project, &cgroups, &[verb]);
            assert!(output.status.success(), "{verb} failed: {output:?}");
            took.push(elapsed.as_secs_f64() * 1000.0);
            if let Some(ms) = ready_after(&String::from_utf8_lossy(&output.stderr)) {
                ready.push(ms);
            }
        }
        load.answered(100);
        let records = load.finish();
        let _ = lichtara(dir, &project, &cgroups, &["stop"]);
        use lichtara_tests::load::Outcome;
        let count = |judge: &dyn Fn(&lichtara_tests::load::Record) -> bool| {
            records.iter().filter(|record| judge(record)).count()
        };
        let answered = count(&|r| r.outcome == Outcome::Ok);
        let refused = count(&|r| r.outcome == Outcome::Refused);
        let retried = count(&|r| r.retried);
        let failed = records.len() - answered - refused - retried;
        let (median, _, max) = super::stats(took);
        let ready = if ready.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.0} ms", super::stats(ready).0)
        };
        println!(
            "| {way} | {answered} | {refused} | {failed} | {retried} | {median:.0} ms ({max:.0}) | {ready} |"
        );
    }
    println!(
        "\nrefused: the connection was refused (nothing listened); failed: a request on an open connection got no complete answer; retried: a reused keep-alive connection closed before any byte of the answer, retried on a new one as clients do (the retry is counted on its own).\n"
    );
}

/// `ready after 123ms` (or `1.234s`) in a reload's or restart's note.
fn ready_after(said: &str) -> Option<f64> {
    let rest = said.split("ready after ").nth(1)?;
    let word: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || c.is_ascii_alphabetic())
        .collect();
    if let Some(ms) = word.strip_suffix("ms") {
        return ms.parse().ok();
    }
    word.strip_suffix('s')?
        .parse::<f64>()
        .ok()
        .map(|s| s * 1000.0)
}
