//! The `lichtara` process manager, end to end, on real processes.
//!
//! Every test works in a temporary project directory and marks everything
//! it starts with `LICHTARA_TEST_RUN=<unique token>`, inherited by every
//! descendant. The test process is a child subreaper, so whatever the
//! manager starts is re-parented to it and reaped here; at the end of each
//! test, anything still carrying the token is killed by PID and reaped.

#![cfg(target_os = "linux")]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};

// The library's and the manager's own /proc reader, as the manager
// includes it.
#[path = "../src/proc_stat.rs"]
mod proc_stat;

use proc_stat::{all_stats, pids, stat};

const LICHTARA: &str = env!("CARGO_BIN_EXE_lichtara");
const TOKEN_VAR: &str = "LICHTARA_TEST_RUN";
const MARKER_VAR: &str = "LICHTARA_MARKER";
const SUPERVISOR_VAR: &str = "LICHTARA_SUPERVISES=";

/// A temporary project, and everything started for it.
struct Project {
    dir: PathBuf,
    token: String,
    /// This test's own cgroup subtree, where a writable cgroup v2 exists:
    /// the manager makes the services' cgroups under it
    /// (`LICHTARA_CGROUP_BASE`), and it is removed at the end.
    cgroups: Option<PathBuf>,
}

impl Project {
    fn new(test: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Whatever the manager starts is re-parented here and reaped here.
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("become a subreaper");
        let token = format!(
            "{test}-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        );
        let dir = std::env::temp_dir().join(format!("lichtara-cli-{token}"));
        std::fs::create_dir_all(&dir).expect("create the project directory");
        let cgroups = cgroup2_mount()
            .map(|mount| mount.join(format!("lichtara-test-{token}")))
            .filter(|base| std::fs::create_dir(base).is_ok());
        Self {
            dir,
            token,
            cgroups,
        }
    }

    /// The cgroup leaves the manager made for this project's services.
    fn leaves(&self) -> Vec<PathBuf> {
        let Some(base) = &self.cgroups else {
            return Vec::new();
        };
        let mut leaves = Vec::new();
        for project in std::fs::read_dir(base).into_iter().flatten().flatten() {
            for leaf in std::fs::read_dir(project.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if leaf.path().is_dir() {
                    leaves.push(leaf.path());
                }
            }
        }
        leaves
    }

    /// Runs `lichtara ARGS` in the project and waits for it.
    fn lichtara(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lichtara")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = self.environment(Command::new(LICHTARA));
        command.args(args);
        command
    }

    /// `command` set up as this project's commands are: its directory,
    /// this test's token and cgroup base, no stdin.
    fn environment(&self, mut command: Command) -> Command {
        command
            .current_dir(&self.dir)
            .env(TOKEN_VAR, &self.token)
            .stdin(Stdio::null());
        match &self.cgroups {
            Some(base) => command.env("LICHTARA_CGROUP_BASE", base),
            // No writable cgroup v2: the manager finds that out itself.
            None => command.env_remove("LICHTARA_CGROUP_BASE"),
        };
        command
    }

    /// `cp -a` of the project directory: another project, this test's
    /// token (so whatever it starts is cleaned up too).
    fn copy(&self) -> Project {
        let dir = self.dir.with_file_name(format!(
            "{}-copy",
            self.dir.file_name().unwrap().to_string_lossy()
        ));
        let copied = Command::new("cp")
            .arg("-a")
            .arg(&self.dir)
            .arg(&dir)
            .status()
            .expect("cp");
        assert!(copied.success());
        Project {
            dir,
            token: self.token.clone(),
            cgroups: self.cgroups.clone(),
        }
    }

    /// Makes `.lichtara/` as the manager would (0700), for a test to put
    /// files in.
    fn make_state(&self) {
        std::fs::create_dir_all(self.state()).unwrap();
        std::fs::set_permissions(
            self.state(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
    }

    fn state(&self) -> PathBuf {
        self.dir.join(".lichtara")
    }

    fn record(&self, name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.state().join(format!("{name}.pid")))
            .expect("the PID file");
        serde_json::from_str(&text).expect("a JSON record")
    }

    /// PIDs of live (non-zombie) processes carrying this test's token,
    /// but for the services' supervisors.
    fn ours(&self) -> Vec<i32> {
        let supervisors = self.supervisors();
        self.everything()
            .into_iter()
            .filter(|pid| !supervisors.contains(pid))
            .collect()
    }

    /// The live supervisors among them.
    fn supervisors(&self) -> Vec<i32> {
        self.everything()
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                    env.split(|b| *b == 0)
                        .any(|entry| entry.starts_with(SUPERVISOR_VAR.as_bytes()))
                })
            })
            .collect()
    }

    /// Every live process carrying this test's token.
    fn everything(&self) -> Vec<i32> {
        live_with_env(TOKEN_VAR, &self.token)
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Pass or fail: kill what this test started (by PID, found by its
        // unique token) and reap it.
        for pid in self.everything() {
            if let Some(pid) = Pid::from_raw(pid) {
                let _ = kill_process(pid, Signal::KILL);
            }
        }
        // And whatever is in this test's cgroups (a process that cleared
        // its environment carries no token), then the cgroups themselves.
        if let Some(base) = &self.cgroups {
            let _ = std::fs::write(base.join("cgroup.kill"), "1");
            let events = base.join("cgroup.events");
            wait_until_quietly(|| {
                std::fs::read_to_string(&events).map_or(true, |e| e.contains("populated 0"))
            });
            reap_our_zombies();
            remove_cgroups(base);
        }
        reap_our_zombies();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Removes the empty cgroup `dir` and every cgroup below it, deepest first.
fn remove_cgroups(dir: &Path) {
    for below in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if below.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroups(&below.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The first cgroup2 mount in this process's mountinfo (never a
/// hard-coded path).
fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let separator = fields.iter().position(|field| *field == "-")?;
        let mount = fields.get(4)?;
        (fields.get(separator + 1) == Some(&"cgroup2")).then(|| PathBuf::from(mount))
    })
}

/// [`wait_until`] for a drop: gives up silently after [`PATIENCE`].
fn wait_until_quietly(mut ready: impl FnMut() -> bool) {
    let began = Instant::now();
    while !ready() && began.elapsed() < PATIENCE {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether the process is there and has not exited.
fn is_live(pid: i32) -> bool {
    stat(pid).is_ok_and(|stat| !stat.is_zombie())
}

fn live_with_env(name: &str, value: &str) -> Vec<i32> {
    let needle = format!("{name}={value}");
    pids()
        .expect("/proc")
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|entry| entry == needle.as_bytes())
            })
        })
        .filter(|pid| is_live(*pid))
        .collect()
}

/// Reaps the zombies re-parented to this test process, by PID: never a
/// `waitpid(-1)`, which could take another test's child. Only those in a
/// process group of their own — what the manager starts leads its own
/// group — so that a `Child` another test spawned directly (it stays in
/// this process's group) is left for that test to wait on.
fn reap_our_zombies() {
    let me = std::process::id() as i32;
    let our_group = rustix::process::getpgrp().as_raw_nonzero().get();
    for stat in all_stats().expect("/proc") {
        if stat.is_zombie() && stat.ppid == me && stat.pgrp != our_group {
            let _ = waitpid(Pid::from_raw(stat.pid), WaitOptions::NOHANG);
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts that the command said `needle` on stdout or stderr.
#[track_caller]
fn assert_says(output: &Output, needle: &str) {
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        said.contains(needle),
        "expected {needle:?} in:\n{}",
        text(output)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// How long any one wait of these tests may last before it is a failure.
const PATIENCE: Duration = Duration::from_secs(20);

/// Waits until `ready()` holds, polling: another process's state (a child
/// it forks, a file it writes) has no event for this test to await. Panics
/// with `what` past [`PATIENCE`], a guard against hangs, not a measure.
#[track_caller]
fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let began = Instant::now();
    while !ready() {
        assert!(began.elapsed() < PATIENCE, "{what} within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits (bounded) until something accepts on the port; returns how long
/// that took.
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

/// Kills a process this test started, by PID, and reaps it.
fn kill_and_reap(pid: i32) {
    let pid = Pid::from_raw(pid).expect("a pid");
    kill_process(pid, Signal::KILL).expect("kill our own process");
    waitpid(Some(pid), WaitOptions::empty()).expect("reap it");
}

/// The supervisor of service `name`, from its record.
fn supervisor_of(project: &Project, name: &str) -> i32 {
    let record = project.record(name);
    record["supervisor"]["pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no supervisor in {record}")) as i32
}

/// The crash of a whole service: its supervisor, then its main process,
/// SIGKILLed (the OOM killer, a `kill -9` of both), each reaped here. Both
/// were re-parented to this test: the supervisor when `start` exited, the
/// main process when its supervisor died. (The main process alone dying
/// is no crash of the service: its supervisor ends the rest of the run.)
fn crash(project: &Project, leader: i32) {
    kill_and_reap(supervisor_of(project, "server"));
    kill_and_reap(leader);
}

/// Asserts that a process this test started outside the manager is still
/// running (the manager must not have touched it), then ends and reaps it.
#[track_caller]
fn still_running_then_end(mut child: Child, what: &str) {
    assert_eq!(child.try_wait().unwrap(), None, "{what}");
    child.kill().unwrap();
    child.wait().unwrap();
}

fn pid_of(output: &Output) -> i32 {
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no pid printed:\n{}", text(output)))
}

#[test]
fn lifecycle_with_a_real_http_server() {
    let project = Project::new("lifecycle");
    let port = free_port().to_string();
    let server = [
        "start",
        "--",
        "python3",
        "-m",
        "http.server",
        &port,
        "--bind",
        "127.0.0.1",
    ];
    let started = project.lichtara(&server);
    assert!(started.status.success(), "{}", text(&started));
    let pid = pid_of(&started);
    wait_listening(port.parse().unwrap());

    let again = project.lichtara(&server);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_says(&again, "already running");

    let status = project.lichtara(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["state"], "running");
    assert_eq!(json["pid"], pid);
    assert_eq!(json["ports"][0].as_u64(), Some(port.parse().unwrap()));

    // http.server logs each request to stderr, which goes to the log,
    // before it sends the response: once the response has been read to
    // its end (HTTP/1.0 closes), the line is in the log.
    let mut probe = TcpStream::connect(("127.0.0.1", port.parse().unwrap())).unwrap();
    probe.set_read_timeout(Some(PATIENCE)).unwrap();
    probe
        .write_all(b"GET /lichtara-probe HTTP/1.0\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    probe
        .read_to_end(&mut answer)
        .expect("the probe's response");
    assert!(answer.starts_with(b"HTTP/1.0 404"), "{answer:?}");
    let logs = project.lichtara(&["logs", "-n", "50"]);
    assert!(logs.status.success(), "{}", text(&logs));

    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_says(&stopped, "stopped `server`");
    assert!(!is_live(pid));
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
    // the port is free again at once
    TcpListener::bind(("127.0.0.1", port.parse::<u16>().unwrap()))
        .expect("the port is free after stop");

    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    let again = project.lichtara(&["stop"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_says(&again, "not running");
    let logs = std::fs::read_to_string(project.state().join("server.log")).unwrap();
    assert!(logs.contains("lichtara-probe"), "{logs}");
}

#[test]
fn a_server_ignoring_sigterm_is_stopped_by_escalation_with_nothing_left() {
    let project = Project::new("escalation");
    // sh ignores TERM, and so does its child (an ignored signal stays
    // ignored across exec).
    let started = project.lichtara(&["start", "--", "sh", "-c", "trap '' TERM; sleep 1000 & wait"]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    wait_until("the child started", || project.ours().len() >= 2);
    let stopped = project.lichtara(&["stop", "--timeout", "300ms"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_says(&stopped, "needed SIGKILL");
    assert!(!is_live(leader));
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
    assert!(!project.state().join("server.pid").exists());
}

#[test]
fn orphans_are_found_by_marker_and_a_look_alike_survives() {
    let project = Project::new("orphans");
    let script = "sleep 1000 & setsid sleep 1000 & exec sleep 1000";
    let started = project.lichtara(&["start", "--", "sh", "-c", script]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    wait_until("the server's children started", || {
        project.ours().len() >= 3
    });
    let orphans: Vec<i32> = project
        .ours()
        .into_iter()
        .filter(|pid| *pid != leader)
        .collect();
    // The crash: the leader and its supervisor die without cleaning up.
    crash(&project, leader);
    // A look-alike with the same command line, started outside the manager.
    let look_alike: Child = Command::new("sleep").arg("1000").spawn().unwrap();

    let listed = project.lichtara(&["cleanup", "--dry-run"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let table = String::from_utf8_lossy(&listed.stdout).to_string();
    for pid in &orphans {
        assert!(
            table.contains(&pid.to_string()),
            "orphan {pid} not listed:\n{table}"
        );
    }
    assert!(!table.contains(&look_alike.id().to_string()), "{table}");
    assert!(table.contains("stale PID file"), "{table}");
    // Without a terminal and without --yes: only listed.
    let refused = project.lichtara(&["cleanup"]);
    assert_says(&refused, "only listed");
    assert!(orphans.iter().all(|pid| is_live(*pid)));

    let cleaned = project.lichtara(&["cleanup", "--yes"]);
    assert!(cleaned.status.success(), "{}", text(&cleaned));
    assert_says(&cleaned, "ended 2 process(es)");
    assert!(orphans.iter().all(|pid| !is_live(*pid)));
    still_running_then_end(look_alike, "the look-alike must survive");
}

#[test]
fn a_crashed_servers_stale_pid_file_is_reported_and_never_acted_on() {
    let project = Project::new("stale");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    crash(&project, pid_of(&started));
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(1), "{}", text(&status));
    assert_says(&status, "is gone");
    let stopped = project.lichtara(&["stop"]);
    assert_eq!(stopped.status.code(), Some(0), "{}", text(&stopped));
    assert_says(&stopped, "nothing was signalled");
    assert!(!project.state().join("server.pid").exists());
    let restarted = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    assert!(project.lichtara(&["stop"]).status.success());
}

/// A record of this project's `server`, as `start` writes it, whose
/// process has been stopped: what tests forge PID files from.
fn a_real_record(project: &Project) -> serde_json::Value {
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let record = project.record("server");
    assert!(project.lichtara(&["stop"]).status.success());
    reap_our_zombies();
    record
}

/// Writes `record` with its process replaced by `pid` (and its group and
/// start time, shifted by `start_shift` ticks).
fn forge(project: &Project, record: &serde_json::Value, pid: i32, start_shift: u64) -> String {
    let stat = stat(pid).unwrap();
    let mut forged = record.clone();
    forged["pid"] = pid.into();
    forged["pgid"] = stat.pgrp.into();
    forged["start_time"] = (stat.start_time + start_shift).into();
    let text = forged.to_string();
    std::fs::write(project.state().join("server.pid"), &text).unwrap();
    text
}

#[test]
fn a_pid_that_now_belongs_to_another_process_is_never_signalled() {
    let project = Project::new("reused");
    let record = a_real_record(&project);
    // A live process of this test, recorded with a wrong start time: what a
    // PID file looks like after the PID was recycled.
    let stranger = Command::new("sleep").arg("1000").spawn().unwrap();
    forge(&project, &record, stranger.id() as i32, 1);
    let stopped = project.lichtara(&["stop"]);
    assert_eq!(stopped.status.code(), Some(0), "{}", text(&stopped));
    assert_says(&stopped, "another process");
    still_running_then_end(stranger, "the stranger must not be signalled");
}

#[test]
fn a_forged_pid_file_naming_a_live_process_is_refused_and_left_as_it_is() {
    let project = Project::new("forged");
    let record = a_real_record(&project);
    // The PID file rewritten with a live process's real start time (read
    // from /proc, as anyone can): a stranger leading its own group, and the
    // test process itself, an ancestor of the `lichtara` it runs.
    let stranger = Command::new("sleep")
        .arg("1000")
        .process_group(0)
        .spawn()
        .unwrap();
    let me = std::process::id() as i32;
    for (pid, what, proof) in [
        (stranger.id() as i32, "a stranger", "no LICHTARA_MARKER"),
        (me, "the invoking process", "one of its ancestors"),
    ] {
        let forged = forge(&project, &record, pid, 0);
        for args in [&["stop"][..], &["restart", "--", "sleep", "1000"]] {
            let refused = project.lichtara(args);
            assert_eq!(
                refused.status.code(),
                Some(5),
                "{what}, {args:?}: {}",
                text(&refused)
            );
            assert_says(&refused, &format!("process {pid} (user"));
            assert_says(&refused, proof);
            assert_says(&refused, "nothing was signalled");
        }
        let status = project.lichtara(&["status"]);
        assert_eq!(status.status.code(), Some(4), "{what}: {}", text(&status));
        let started = project.lichtara(&["start", "--", "sleep", "1000"]);
        assert_eq!(started.status.code(), Some(5), "{what}: {}", text(&started));
        assert_eq!(
            std::fs::read_to_string(project.state().join("server.pid")).unwrap(),
            forged,
            "{what}: the record is left as it is"
        );
    }
    assert!(project.ours().is_empty(), "nothing was started");
    still_running_then_end(stranger, "the stranger must not be signalled");
}

/// A user this test creates (root only), removed when dropped.
struct TestUser {
    name: String,
    uid: u32,
}

impl TestUser {
    /// `None`, with the reason printed, when this test cannot create one.
    fn create(test: &str) -> Option<Self> {
        if !rustix::process::getuid().is_root() {
            eprintln!("SKIPPED: {test} creates a user, which needs root");
            return None;
        }
        static USERS: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "lcht{}x{}",
            std::process::id(),
            USERS.fetch_add(1, Ordering::Relaxed)
        );
        let added = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin", &name])
            .output()
            .ok()?;
        if !added.status.success() {
            eprintln!("SKIPPED: {test}: useradd failed: {}", text(&added));
            return None;
        }
        let id = Command::new("id").args(["-u", &name]).output().ok()?;
        let uid = String::from_utf8_lossy(&id.stdout).trim().parse().ok()?;
        Some(Self { name, uid })
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}

#[test]
fn a_process_of_another_user_carrying_the_marker_is_refused() {
    let Some(user) = TestUser::create("a_process_of_another_user_carrying_the_marker_is_refused")
    else {
        return;
    };
    let project = Project::new("other-user");
    let record = a_real_record(&project);
    // Another user's process that carries this very run's marker (its
    // environment is theirs to set): only the uid tells it apart.
    let theirs = Command::new("sleep")
        .arg("1000")
        .uid(user.uid)
        .env(MARKER_VAR, record["marker"].as_str().unwrap())
        .env(TOKEN_VAR, &project.token)
        .spawn()
        .unwrap();
    let forged = forge(&project, &record, theirs.id() as i32, 0);
    let refused = project.lichtara(&["stop"]);
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused));
    assert_says(
        &refused,
        &format!("it runs as {} (uid {})", user.name, user.uid),
    );
    assert_eq!(
        std::fs::read_to_string(project.state().join("server.pid")).unwrap(),
        forged
    );
    still_running_then_end(theirs, "another user's process must not be signalled");
}

#[test]
fn a_copy_of_the_project_directory_never_acts_on_the_original() {
    let project = Project::new("original");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let original = pid_of(&started);
    // `cp -a`, a common way to try a change: the PID file comes along.
    let copy = project.copy();
    assert!(copy.state().join("server.pid").exists());
    let stopped = copy.lichtara(&["stop"]);
    assert_eq!(stopped.status.code(), Some(5), "{}", text(&stopped));
    assert_says(&stopped, "another project directory");
    assert!(is_live(original), "a stop in the copy ended the original");
    let status = copy.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert_says(&status, "not running here");
    let cleanup = copy.lichtara(&["cleanup", "--yes"]);
    assert!(cleanup.status.success(), "{}", text(&cleanup));
    assert!(
        is_live(original),
        "a cleanup in the copy ended the original"
    );
    // The copy runs a service of its own; its stop leaves the original be.
    let own = copy.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(own.status.success(), "{}", text(&own));
    let own = pid_of(&own);
    let stopped = copy.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(!is_live(own));
    assert!(is_live(original));
    stop_leaving_nothing(&project);
}

#[test]
fn a_symlinked_pid_file_is_refused_and_its_target_untouched() {
    let project = Project::new("symlink");
    std::fs::create_dir_all(project.state()).unwrap();
    let target = project.dir.join("precious.txt");
    std::fs::write(&target, "do not touch").unwrap();
    std::os::unix::fs::symlink(&target, project.state().join("server.pid")).unwrap();
    for args in [
        &["stop"][..],
        &["status"],
        &["start", "--", "sleep", "1000"],
    ] {
        let output = project.lichtara(args);
        assert_ne!(output.status.code(), Some(0), "{args:?}: {}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("symlink"),
            "{args:?}: {}",
            text(&output)
        );
    }
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "do not touch");
    assert!(
        std::fs::symlink_metadata(project.state().join("server.pid"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(project.ours().is_empty());
}

#[test]
fn bad_input_gives_one_clear_line_and_changes_nothing() {
    let project = Project::new("bad-input");
    // "Ended at once" means within the start grace: a grace no load can
    // outlast, since `sh -c "exit 3"` must be seen to end within it.
    std::fs::write(project.dir.join("Lichtara.toml"), "start_grace = \"60s\"\n").unwrap();
    let missing = project.lichtara(&["start", "--", "/nonexistent/lichtara-test-command"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert_says(&missing, "cannot start");
    assert!(!project.state().join("server.pid").exists());
    // Nothing is left of it: no socket, no cgroup; the log says why.
    assert!(!project.state().join("server.sock").exists());
    assert!(project.leaves().is_empty(), "{:?}", project.leaves());
    wait_for_log_file(&project, "`server` did not start: cannot start");

    let dies = project.lichtara(&["start", "--", "sh", "-c", "exit 3"]);
    assert_eq!(dies.status.code(), Some(1), "{}", text(&dies));
    assert_says(&dies, "ended at once (exit code 3)");
    assert!(!project.state().join("server.pid").exists());

    std::fs::write(project.state().join("server.pid"), "garbage").unwrap();
    let garbage = project.lichtara(&["stop"]);
    assert_eq!(garbage.status.code(), Some(1), "{}", text(&garbage));
    let stderr = String::from_utf8_lossy(&garbage.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a lichtara PID file"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(project.state().join("server.pid")).unwrap(),
        "garbage"
    );

    let no_command = project.lichtara(&["start", "--name", "other"]);
    assert_eq!(no_command.status.code(), Some(1), "{}", text(&no_command));
    assert_says(&no_command, "no command");
    // status says every error with LSB's 4 (unknown), the others with 1.
    let bad_name = project.lichtara(&["status", "--name", "../etc"]);
    assert_eq!(bad_name.status.code(), Some(4), "{}", text(&bad_name));
    let bad_name = project.lichtara(&["stop", "--name", "../etc"]);
    assert_eq!(bad_name.status.code(), Some(1), "{}", text(&bad_name));
    let json = project.lichtara(&["status", "--json", "--name", "../etc"]);
    assert_eq!(json.status.code(), Some(4), "{}", text(&json));
    let error: serde_json::Value = serde_json::from_slice(&json.stdout).expect("a JSON error");
    assert_eq!(error["state"], "unknown");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("invalid service name"),
        "{error}"
    );
}

#[test]
fn two_racing_starts_have_exactly_one_winner() {
    let project = Project::new("race");
    let spawn = || {
        project
            .command(&["start", "--", "sleep", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outputs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let winners = outputs.iter().filter(|o| o.status.success()).count();
    assert_eq!(winners, 1, "{}\n{}", text(&outputs[0]), text(&outputs[1]));
    assert_eq!(project.ours().len(), 1);
    assert!(project.lichtara(&["stop"]).status.success());
}

#[test]
fn run_supervises_in_the_foreground_and_leaves_no_descendant() {
    let project = Project::new("run");
    let mut run = project
        .command(&[
            "run",
            "--timeout",
            "2s",
            "--",
            "sh",
            "-c",
            "sleep 1000 & setsid sleep 1000 & (setsid env -i sleep 600 &); echo ready; wait",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line_then_close(&mut run).trim(), "ready");
    wait_until("all four started", || project.ours().len() >= 4);
    let record = project.record("server");
    assert_eq!(record["pid"], run.id());
    let status = project.lichtara(&["status", "--json"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    // Where a cgroup can hold the command, the daemon that cleared its
    // environment is in it too.
    let mut escapee = None;
    if let [leaf] = &project.leaves()[..] {
        wait_until("the escapee in the command's cgroup", || {
            escapee = leaf_members(leaf).into_iter().find(|pid| is_escapee(*pid));
            escapee.is_some()
        });
        assert_contained(&project.lichtara(&["status", "--json"]), escapee.unwrap());
    }
    kill_process(Pid::from_raw(run.id() as i32).unwrap(), Signal::TERM).unwrap();
    let exit = wait_bounded(run, Duration::from_secs(30));
    // sh died of the forwarded SIGTERM: 128 + 15
    assert_eq!(exit.code(), Some(143));
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
    assert!(!project.state().join("server.pid").exists());
    reap_our_zombies();
    assert!(
        escapee.is_none_or(|pid| !is_live(pid)),
        "the escapee outlived run"
    );
    assert!(project.leaves().is_empty(), "its cgroup is removed");
}

#[test]
fn settings_come_from_lichtara_toml() {
    let project = Project::new("settings");
    std::fs::write(
        project.dir.join("Lichtara.toml"),
        "name = \"api\"\ncommand = [\"sh\", \"-c\", \"echo port=$PORT; exec sleep 1000\"]\nstop_timeout = \"2s\"\n[env]\nPORT = \"8123\"\n",
    )
    .unwrap();
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    assert!(project.state().join("api.pid").exists());
    let restarted = project.lichtara(&["restart"]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    assert_ne!(pid_of(&restarted), pid_of(&started));
    assert!(project.lichtara(&["stop"]).status.success());
    let log = std::fs::read_to_string(project.state().join("api.log")).unwrap();
    assert_eq!(log.matches("port=8123").count(), 2, "{log}");
    let typo = Project::new("settings-typo");
    std::fs::write(typo.dir.join("Lichtara.toml"), "comand = [\"x\"]\n").unwrap();
    let output = typo.lichtara(&["status"]);
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    assert_says(&output, "comand");
}

/// The first line a child spawned with a piped stdout writes; the pipe's
/// reader is then closed.
fn first_line_then_close(child: &mut Child) -> String {
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("a piped stdout")),
        &mut line,
    )
    .expect("read a line");
    line
}

/// Waits for a child of this test, killing it (by PID) past `limit`.
fn wait_bounded(mut child: Child, limit: Duration) -> std::process::ExitStatus {
    let pid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let status = child.wait();
        let _ = tx.send(());
        status
    });
    if rx.recv_timeout(limit).is_err() {
        let _ = kill_process(Pid::from_raw(pid).unwrap(), Signal::KILL);
        let status = waiter.join().unwrap();
        panic!("still running after {limit:?}; killed: {status:?}");
    }
    waiter.join().unwrap().expect("wait for the child")
}

/// `lichtara stop`, then nothing of the project is left.
fn stop_leaving_nothing(project: &Project) {
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    reap_our_zombies();
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
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
/// are after [`PATIENCE`]: the server closes a connection's descriptor a
/// moment after the client has read its end (longer on a loaded machine),
/// so a count taken at once can be one high without anything leaking.
fn settled(pid: i32, limit: (usize, usize)) -> (usize, usize) {
    let began = Instant::now();
    loop {
        let now = resources(pid);
        if (now.0 <= limit.0 && now.1 <= limit.1) || began.elapsed() > PATIENCE {
            return now;
        }
        // Another process's state: no event to await; retry, bounded.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A project whose service is the reference server on a fixed free port.
fn server_project(test: &str) -> (Project, u16) {
    let project = Project::new(test);
    let port = free_port();
    let server = Path::new(LICHTARA).with_file_name("http_server");
    assert!(
        server.exists(),
        "{} is missing: `cargo test --workspace` builds it (or `cargo build -p lichtara-examples`)",
        server.display()
    );
    std::fs::write(
        project.dir.join("Lichtara.toml"),
        format!(
            "command = [{server:?}, \"--addr\", \"127.0.0.1:{port}\", \"--db\", \"items.sqlite\"]\nstop_timeout = \"20s\"\n"
        ),
    )
    .unwrap();
    (project, port)
}

/// Waits (bounded) until the service's log file holds `needle`.
fn wait_for_log_file(project: &Project, needle: &str) {
    let path = project.dir.join(".lichtara/server.log");
    wait_until(&format!("{needle:?} in {}", path.display()), || {
        std::fs::read_to_string(&path).is_ok_and(|log| log.contains(needle))
    });
}

#[test]
fn a_server_killed_in_the_middle_of_its_shutdown_starts_again_cleanly() {
    let (project, port) = server_project("killed");
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    let pid = pid_of(&started);
    wait_listening(port);
    // A request in flight holds the drain open.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    slow.write_all(b"GET /slow?ms=20000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    wait_for_log_file(&project, "slow request started");
    kill_process(Pid::from_raw(pid).expect("a pid"), Signal::TERM).expect("signal our server");
    wait_for_log_file(&project, "waiting for 1 connection");
    // The crash, in the middle of the shutdown.
    crash(&project, pid);
    drop(slow);

    let status = project.lichtara(&["status"]);
    assert_ne!(status.status.code(), Some(0), "{}", text(&status));
    let again = project.lichtara(&["start"]);
    assert!(again.status.success(), "{}", text(&again));
    let new = pid_of(&again);
    assert_ne!(new, pid);
    wait_listening(port);
    serve(port, 4, true);
    assert_eq!(project.ours(), vec![new], "only the new server runs");
    stop_leaving_nothing(&project);
}

#[test]
fn restarts_rebind_the_same_port_at_once_and_leave_nothing_behind() {
    let cycles = setting("LICHTARA_RESTART_CYCLES", 5);
    let (project, port) = server_project("restarts");
    let started = project.lichtara(&["start"]);
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
        let restarted = project.lichtara(&["restart"]);
        assert!(
            restarted.status.success(),
            "cycle {cycle}: {}",
            text(&restarted)
        );
        let old = pid;
        pid = pid_of(&restarted);
        reap_our_zombies();
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
    stop_leaving_nothing(&project);
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

/// Runs `lichtara ARGS` with its stdout a pipe whose reader is gone, as in
/// `lichtara status | head -0`.
fn into_closed_pipe(project: &Project, args: &[&str]) -> Output {
    let mut child = project
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    child.wait_with_output().unwrap()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly_with_its_own_code() {
    let project = Project::new("closed-pipe");
    // `start` after the service runs, too: its refusal goes to stderr.
    let started = into_closed_pipe(&project, &["start", "--", "sleep", "1000"]);
    assert_eq!(started.status.code(), Some(0), "{}", text(&started));
    let pid = project.record("server")["pid"].as_i64().unwrap() as i32;
    assert!(is_live(pid), "the service started and was recorded");
    for (args, code) in [
        (&["status"][..], 0),
        (&["status", "--json"], 0),
        (&["logs", "-n", "5"], 0),
        (&["cleanup", "--dry-run"], 0),
        (&["start", "--", "sleep", "1000"], 1),
        (&["stop"], 0),
        (&["status"], 3),
        (&["stop"], 0),
    ] {
        let output = into_closed_pipe(&project, args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&output)
        );
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("panicked"),
            "{args:?}: {}",
            text(&output)
        );
    }
    assert!(!is_live(pid), "stop did its work with nobody reading");
}

#[test]
fn huge_durations_and_bad_settings_are_refused_before_anything_is_signalled_or_spawned() {
    let project = Project::new("huge");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let pid = pid_of(&started);
    for args in [
        &["stop", "--timeout", "500000000000years"][..],
        &["restart", "--timeout", "25h"],
        &[
            "run",
            "--timeout",
            "500000000000years",
            "--",
            "sleep",
            "1000",
        ],
    ] {
        let refused = project.lichtara(args);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&refused)
        );
        assert_says(&refused, "at most 1day");
        assert!(is_live(pid), "{args:?} signalled the service");
    }
    assert_eq!(project.ours(), vec![pid], "nothing else was started");
    stop_leaving_nothing(&project);
    for setting in [
        "start_grace = \"soon\"",
        "stop_timeout = \"500000000000years\"",
        "stop_signal = \"SIGKILL\"",
    ] {
        std::fs::write(project.dir.join("Lichtara.toml"), format!("{setting}\n")).unwrap();
        let refused = project.lichtara(&["start", "--", "sleep", "1000"]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{setting}: {}",
            text(&refused)
        );
        assert_says(&refused, setting.split(' ').next().unwrap());
        assert!(project.ours().is_empty(), "{setting}: started anyway");
        assert!(!project.state().join("server.pid").exists(), "{setting}");
    }
}

#[test]
fn the_stop_signal_is_configurable() {
    let project = Project::new("stop-signal");
    // Ignores SIGTERM, ends cleanly on SIGINT.
    let script = "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nsignal.signal(signal.SIGINT, lambda *_: sys.exit(0))\nprint('re' 'ady', flush=True)\ntime.sleep(1000)\n";
    std::fs::write(
        project.dir.join("Lichtara.toml"),
        format!("stop_signal = \"SIGINT\"\nstop_timeout = \"20s\"\ncommand = [\"python3\", \"-c\", {script:?}]\n"),
    )
    .unwrap();
    let started = project.lichtara(&["start"]);
    assert!(started.status.success(), "{}", text(&started));
    wait_for_log_file(&project, "ready");
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_says(&stopped, "stopped `server`");
    let said = String::from_utf8_lossy(&stopped.stdout);
    assert!(
        !said.contains("SIGKILL"),
        "SIGINT was not what it got: {said}"
    );
    assert!(project.ours().is_empty());
}

#[test]
fn the_state_directory_is_checked_and_nothing_in_it_is_followed_or_hangs_on() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new("state");
    std::fs::create_dir_all(project.state()).unwrap();
    // Writable by others: refused, with the fix.
    std::fs::set_permissions(project.state(), std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [&["start", "--", "sleep", "1000"][..], &["logs"], &["stop"]] {
        let refused = project.lichtara(args);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&refused)
        );
        assert_says(&refused, "chmod 700");
    }
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(4), "{}", text(&status));
    assert!(project.ours().is_empty());
    std::fs::set_permissions(project.state(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A log that is a symlink: never followed.
    let log = project.state().join("server.log");
    std::os::unix::fs::symlink("/etc/passwd", &log).unwrap();
    let followed = project.lichtara(&["logs"]);
    assert_eq!(followed.status.code(), Some(1), "{}", text(&followed));
    assert_says(&followed, "symlink");
    assert!(!String::from_utf8_lossy(&followed.stdout).contains("root:"));
    std::fs::remove_file(&log).unwrap();
    // A FIFO in place of the log: an error, not a hang (bounded wait).
    let made = Command::new("mkfifo").arg(&log).status().expect("mkfifo");
    assert!(made.success());
    for args in [
        &["logs"][..],
        &["logs", "-f"],
        &["start", "--", "sleep", "1000"],
    ] {
        let child = project
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_bounded(child, PATIENCE);
        assert_eq!(status.code(), Some(1), "{args:?}");
    }
    assert!(
        project.ours().is_empty(),
        "start with a FIFO log started anyway"
    );
}

#[test]
fn logs_reads_a_huge_log_from_its_end_and_follow_ends_with_its_reader() {
    let project = Project::new("huge-log");
    project.make_state();
    // 1 GiB (sparse), then three lines.
    let path = project.state().join("server.log");
    let mut log = std::fs::File::create(&path).unwrap();
    log.set_len(1 << 30).unwrap();
    std::io::Seek::seek(&mut log, std::io::SeekFrom::End(0)).unwrap();
    log.write_all(b"\nfirst\nsecond\nthird\n").unwrap();
    // With 256 MiB of address space at most: reading the whole log to print
    // its end would fail to allocate.
    let limited = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 262144 && exec \"$0\" logs -n 2")
        .arg(LICHTARA)
        .current_dir(&project.dir)
        .env(TOKEN_VAR, &project.token)
        .output()
        .unwrap();
    assert_eq!(limited.status.code(), Some(0), "{}", text(&limited));
    assert_eq!(String::from_utf8_lossy(&limited.stdout), "second\nthird\n");
    // `logs -f | head -1`: the reader goes away, and so does logs.
    let mut follow = project
        .command(&["logs", "-f", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line_then_close(&mut follow), "third\n");
    let status = wait_bounded(follow, PATIENCE);
    assert_eq!(status.code(), Some(0));
}

/// Whether `pid` is the escapee, once it is one: `sleep 600` (env -i has
/// exec'd it, so its environment is empty) leading a session of its own.
fn is_escapee(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|cmdline| cmdline == b"sleep\x00600\x00")
        && stat(pid).is_ok_and(|stat| stat.session == pid)
}

/// `status --json` says the service is in a cgroup, with `pid` among its
/// members.
#[track_caller]
fn assert_contained(status: &Output, pid: i32) {
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(
        json["containment"]
            .as_str()
            .unwrap()
            .starts_with("cgroup v2"),
        "{json}"
    );
    assert!(
        json["members"].as_array().unwrap().contains(&pid.into()),
        "{json}"
    );
}

/// The PIDs in a cgroup and in the cgroups below it.
fn leaf_members(leaf: &Path) -> Vec<i32> {
    let mut members: Vec<i32> = std::fs::read_to_string(leaf.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect();
    for below in std::fs::read_dir(leaf).into_iter().flatten().flatten() {
        if below.file_type().is_ok_and(|kind| kind.is_dir()) {
            members.extend(leaf_members(&below.path()));
        }
    }
    members
}

#[test]
fn a_daemon_that_calls_setsid_and_clears_its_environment_cannot_escape() {
    let project = Project::new("escape");
    if project.cgroups.is_none() {
        eprintln!(
            "SKIPPED: no writable cgroup v2 hierarchy here; the escape needs one to be caught"
        );
        return;
    }
    // The service's child double-forks into a session of its own with an
    // empty environment: no group, no marker, no token.
    let script = "(setsid env -i sleep 600 &); echo forked; exec sleep 1000";
    let started = project.lichtara(&["start", "--", "sh", "-c", script]);
    assert!(started.status.success(), "{}", text(&started));
    assert_says(&started, "contained by cgroup v2");
    let leader = pid_of(&started);
    let leaves = project.leaves();
    assert_eq!(leaves.len(), 1, "{leaves:?}");
    // The service's cgroup; each generation of it runs in one below.
    let leaf = leaves[0].clone();
    let mut members = Vec::new();
    wait_until("the escapee in the service's cgroup", || {
        members = leaf_members(&leaf)
            .into_iter()
            .filter(|pid| is_live(*pid) && is_escapee(*pid))
            .collect();
        !members.is_empty()
    });
    let escapee = members[0];
    assert!(!project.ours().contains(&escapee), "it carries no token");
    assert_contained(&project.lichtara(&["status", "--json"]), escapee);

    // stop: nothing of it is left, the escapee included, nor its cgroup.
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    reap_our_zombies();
    assert!(!is_live(leader) && !is_live(escapee), "left behind");
    assert!(!leaf.exists(), "the leaf is removed");

    // The service and its supervisor die without a stop (SIGKILL): the
    // escapee lives on, holds the lock, and is named; cleanup finds it in
    // the cgroup and ends it.
    let started = project.lichtara(&["start", "--", "sh", "-c", script]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    let mut escapees = Vec::new();
    wait_until("the escapee in the service's cgroup", || {
        escapees = leaf_members(&leaf)
            .into_iter()
            .filter(|pid| *pid != leader && is_live(*pid) && is_escapee(*pid))
            .collect();
        !escapees.is_empty()
    });
    let escapee = escapees[0];
    crash(&project, leader);
    let again = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_says(&again, &format!("pid {escapee}: `sleep 600`"));
    let listed = project.lichtara(&["cleanup", "--dry-run"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let table = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(
        table.contains(&escapee.to_string()) && table.contains("in the cgroup of `server`"),
        "{table}"
    );
    let cleaned = project.lichtara(&["cleanup", "--yes"]);
    assert!(cleaned.status.success(), "{}", text(&cleaned));
    reap_our_zombies();
    assert!(!is_live(escapee), "cleanup ended the escapee");
    assert!(!leaf.exists(), "and removed the empty leaf");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    stop_leaving_nothing(&project);
}

#[test]
fn without_a_writable_cgroup_the_manager_says_so_and_still_stops_everything() {
    let mut project = Project::new("no-cgroup");
    // A base that cannot be created: what a container without delegation
    // looks like to the manager.
    if let Some(base) = project.cgroups.take() {
        let _ = std::fs::remove_dir(base);
    }
    let mut command = project.command(&["start", "--", "sh", "-c", "sleep 1000 & exec sleep 1000"]);
    command.env("LICHTARA_CGROUP_BASE", "/proc/lichtara-no-cgroup-here");
    let started = command.output().unwrap();
    assert!(started.status.success(), "{}", text(&started));
    assert_says(
        &started,
        "contained by process group and LICHTARA_MARKER only",
    );
    wait_until("the child started", || project.ours().len() >= 2);
    let mut command = project.command(&["status"]);
    command.env("LICHTARA_CGROUP_BASE", "/proc/lichtara-no-cgroup-here");
    let status = command.output().unwrap();
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_says(
        &status,
        "contained by: process group and LICHTARA_MARKER only",
    );
    let mut command = project.command(&["stop"]);
    command.env("LICHTARA_CGROUP_BASE", "/proc/lichtara-no-cgroup-here");
    let stopped = command.output().unwrap();
    assert!(stopped.status.success(), "{}", text(&stopped));
    reap_our_zombies();
    assert!(
        project.ours().is_empty(),
        "left behind: {:?}",
        project.ours()
    );
}

#[test]
fn hard_links_fifos_and_odd_settings_files_are_refused_without_a_hang() {
    let project = Project::new("odd-files");
    project.make_state();
    // A hard link planted as the log would aim the service's output at
    // another file.
    let victim = project.dir.join("victim.txt");
    std::fs::write(&victim, "untouched\n").unwrap();
    std::fs::hard_link(&victim, project.state().join("server.log")).unwrap();
    let linked = project.lichtara(&["start", "--", "sh", "-c", "echo written; exec sleep 1000"]);
    assert_eq!(linked.status.code(), Some(1), "{}", text(&linked));
    assert_says(&linked, "hard links");
    assert!(project.ours().is_empty());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched\n");
    std::fs::remove_file(project.state().join("server.log")).unwrap();
    // Lichtara.toml as a FIFO, or a link to /dev/zero: an error, at once.
    let settings = project.dir.join("Lichtara.toml");
    let made = Command::new("mkfifo")
        .arg(&settings)
        .status()
        .expect("mkfifo");
    assert!(made.success());
    for args in [&["status"][..], &["start", "--", "sleep", "1000"]] {
        let child = project
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_bounded(child, PATIENCE);
        assert_ne!(status.code(), Some(0), "{args:?}");
    }
    std::fs::remove_file(&settings).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &settings).unwrap();
    let zero = project.lichtara(&["status"]);
    assert_eq!(zero.status.code(), Some(4), "{}", text(&zero));
    assert_says(&zero, "not a regular file");
    assert!(project.ours().is_empty());
}

#[test]
fn output_lost_to_a_full_device_is_an_error() {
    let project = Project::new("dev-full");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let status = project.command(&["status"]).stdout(full).output().unwrap();
    // Not running (3) would have been the answer; it could not be given.
    assert_eq!(status.status.code(), Some(4), "{}", text(&status));
    assert_says(&status, "cannot write to stdout");
}

#[test]
fn a_slow_stop_keeps_the_name_and_never_removes_the_record_of_a_start_that_ran_meanwhile() {
    let mut project = Project::new("slow-stop");
    // Without a cgroup (with one, start refuses while the old run's leaf is
    // populated: the next test's assertion).
    if let Some(base) = project.cgroups.take() {
        let _ = std::fs::remove_dir(base);
    }
    let no_cgroup = |mut command: Command| {
        command.env("LICHTARA_CGROUP_BASE", "/proc/lichtara-no-cgroup-here");
        command
    };
    // The leader dies at SIGTERM; its child ignores SIGTERM and has closed
    // every inherited descriptor (the lock too), so stop waits out its
    // timeout. ('re' 'ady': a traceback quoting the source does not say
    // "ready".)
    let child = "import os, signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nos.closerange(3, 4096)\nprint('re' 'ady', flush=True)\ntime.sleep(1000)\n";
    std::fs::write(project.dir.join("child.py"), child).unwrap();
    let script = "python3 child.py & exec sleep 1000";
    for supervised in [true, false] {
        let _ = std::fs::remove_file(project.state().join("server.log"));
        let started = no_cgroup(project.command(&["start", "--", "sh", "-c", script]))
            .output()
            .unwrap();
        assert!(started.status.success(), "{}", text(&started));
        let leader = pid_of(&started);
        wait_for_log_file(&project, "ready");
        if !supervised {
            // Its supervisor is gone: stop works from the record, and
            // nothing holds the name once the leader has died.
            kill_and_reap(supervisor_of(&project, "server"));
        }
        let stop = no_cgroup(project.command(&["stop", "--timeout", "5s"]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("the leader ended at SIGTERM", || {
            reap_our_zombies();
            !is_live(leader)
        });
        let again = no_cgroup(project.command(&["start", "--", "sleep", "1000"]))
            .output()
            .unwrap();
        if supervised {
            // The supervisor keeps the name until nothing of the run is
            // left: no second run beside the stopping one.
            assert_eq!(again.status.code(), Some(1), "{}", text(&again));
            assert_says(&again, "supervisor");
        } else {
            assert!(again.status.success(), "{}", text(&again));
        }
        let stopped = stop.wait_with_output().unwrap();
        assert!(stopped.status.success(), "{}", text(&stopped));
        assert_says(&stopped, "needed SIGKILL");
        if supervised {
            assert!(!project.state().join("server.pid").exists());
            continue;
        }
        assert_says(&stopped, "did not stop it");
        assert_eq!(
            project.record("server")["pid"],
            pid_of(&again),
            "the new record is kept"
        );
        let status = no_cgroup(project.command(&["status"])).output().unwrap();
        assert_eq!(status.status.code(), Some(0), "{}", text(&status));
        let stopped = no_cgroup(project.command(&["stop"])).output().unwrap();
        assert!(stopped.status.success(), "{}", text(&stopped));
    }
}

#[test]
fn a_cgroup_the_service_makes_below_its_own_is_contained_too_whatever_the_base_is_spelled() {
    let project = Project::new("nested");
    let (Some(base), Some(mount)) = (project.cgroups.clone(), cgroup2_mount()) else {
        eprintln!("SKIPPED: no writable cgroup v2 hierarchy here");
        return;
    };
    // The base spelled with `.` and a doubled slash: the proofs compare
    // real paths.
    let spelled = format!("{}/.//", base.display());
    let lichtara = |args: &[&str]| {
        project
            .command(args)
            .env("LICHTARA_CGROUP_BASE", &spelled)
            .output()
            .unwrap()
    };
    // The service moves a child into a cgroup of its own below its leaf,
    // where it double-forks out of the session with an empty environment.
    let script = format!(
        "leaf={mount}$(sed -n 's/^0:://p' /proc/self/cgroup); mkdir \"$leaf/sub\"; \
         sh -c 'echo $$ > \"$0/sub/cgroup.procs\"; exec env -i setsid sleep 600' \"$leaf\" & exec sleep 1000",
        mount = mount.display()
    );
    for ending in ["stop", "crash"] {
        let started = lichtara(&["start", "--", "sh", "-c", &script]);
        assert!(started.status.success(), "{}", text(&started));
        assert_says(&started, "contained by cgroup v2");
        let leader = pid_of(&started);
        let leaves = project.leaves();
        assert_eq!(leaves.len(), 1, "{leaves:?}");
        // The service runs in its first generation's cgroup, below its own.
        let sub = leaves[0].join("g1").join("sub");
        let mut escapee = 0;
        wait_until("the escapee in the service's sub-cgroup", || {
            escapee = leaf_members(&sub)
                .into_iter()
                .find(|pid| is_escapee(*pid))
                .unwrap_or(0);
            escapee != 0
        });
        assert_contained(&lichtara(&["status", "--json"]), escapee);
        if ending == "stop" {
            let stopped = lichtara(&["stop"]);
            assert!(stopped.status.success(), "{}", text(&stopped));
        } else {
            crash(&project, leader);
            let cleaned = lichtara(&["cleanup", "--yes"]);
            assert!(cleaned.status.success(), "{}", text(&cleaned));
        }
        reap_our_zombies();
        assert!(
            !is_live(leader) && !is_live(escapee),
            "{ending}: left behind"
        );
        assert!(
            !leaves[0].exists(),
            "{ending}: the leaf and its sub-cgroup are removed"
        );
    }
}

#[test]
fn a_start_interrupted_or_whose_supervisor_dies_leaves_a_recorded_service_that_stops_cleanly() {
    let project = Project::new("interrupted");
    // A long start grace: `start` is still waiting while this test acts.
    std::fs::write(project.dir.join("Lichtara.toml"), "start_grace = \"10m\"\n").unwrap();
    let mut start = project
        .command(&["start", "--", "sleep", "1000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The supervisor records the service before its grace begins.
    let pid_file = project.state().join("server.pid");
    wait_until("the record of the starting service", || pid_file.exists());
    let leader = project.record("server")["pid"].as_i64().unwrap() as i32;
    // cleanup never touches a service that is starting.
    let cleaned = project.lichtara(&["cleanup", "--yes"]);
    assert!(cleaned.status.success(), "{}", text(&cleaned));
    assert_says(&cleaned, "no orphaned processes");
    assert!(is_live(leader), "cleanup ended a starting service");
    // Ctrl-C on start ends start only.
    kill_process(Pid::from_raw(start.id() as i32).unwrap(), Signal::INT).unwrap();
    let interrupted = start.wait().unwrap();
    assert_eq!(
        interrupted.signal(),
        Some(Signal::INT.as_raw()),
        "{interrupted:?}"
    );
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_says(&status, "(starting;");
    // Its supervisor dies: the service runs on, recorded; every command
    // says so, and none starts a second copy.
    kill_and_reap(supervisor_of(&project, "server"));
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_says(&status, "supervisor: missing");
    let again = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    assert_says(&again, "without its supervisor");
    assert_eq!(project.ours(), vec![leader]);
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_says(&stopped, "did not stop it");
    reap_our_zombies();
    assert!(
        project.ours().is_empty(),
        "left running: {:?}",
        project.ours()
    );
    assert!(project.leaves().is_empty(), "its cgroup is removed");
}

/// Reads `child`'s stdout lines on a thread of its own until `last` (a
/// line equal to it) or its end, bounded by [`PATIENCE`]; the child is then
/// ended and reaped either way.
fn lines_until(mut child: Child, last: &str) -> Vec<String> {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("piped stdout");
    let (sender, lines) = std::sync::mpsc::channel();
    let last = last.to_owned();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let done = line == last;
            if sender.send(line).is_err() || done {
                break;
            }
        }
    });
    let began = Instant::now();
    let mut seen = Vec::new();
    let finished = loop {
        let left = PATIENCE.saturating_sub(began.elapsed());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break true,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        finished,
        "no end within {PATIENCE:?}; got {} lines",
        seen.len()
    );
    seen
}

#[test]
fn the_supervisor_caps_and_rotates_the_log_between_lines_and_logs_follows_every_line() {
    let project = Project::new("rotate");
    // 4 KiB files, enough of them kept that none is dropped here.
    std::fs::write(
        project.dir.join("Lichtara.toml"),
        "log_max = \"4KiB\"\nlog_keep = 100\n",
    )
    .unwrap();
    let count = 1000;
    let script = format!(
        "import os, time\nwhile not os.path.exists('go'): time.sleep(0.01)\nfor i in range({count}): print(f'line {{i:05}} ' + 'x' * (i % 61), flush=True)\nprint('done', flush=True)\ntime.sleep(1000)\n"
    );
    std::fs::write(project.dir.join("talk.py"), script).unwrap();
    let started = project.lichtara(&["start", "--", "python3", "talk.py"]);
    assert!(started.status.success(), "{}", text(&started));
    // Following from the first line, across every rotation to come.
    let follow = project
        .command(&["logs", "-f", "-n", "1000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::fs::write(project.dir.join("go"), "").unwrap();
    let followed: Vec<String> = lines_until(follow, "done")
        .into_iter()
        .filter(|line| !line.starts_with("-- lichtara:"))
        .collect();
    let expected: Vec<String> = (0..count)
        .map(|i| format!("line {i:05} {}", "x".repeat(i % 61)))
        .chain(["done".to_owned()])
        .collect();
    assert_eq!(
        followed.len(),
        expected.len(),
        "logs -f lost or repeated lines"
    );
    assert_eq!(followed, expected, "logs -f: every line once, in order");

    // On disk: capped files, each ending between two lines, that hold
    // every line once, in order.
    // Newest first: the current one, then the rotated ones (numbered in
    // the order they were written) from the highest number down.
    let mut rotated: Vec<(u64, PathBuf)> = std::fs::read_dir(project.state())
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let number = name.strip_prefix("server.log.")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    rotated.sort();
    let mut files = vec![project.state().join("server.log")];
    files.extend(rotated.into_iter().rev().map(|(_, path)| path));
    assert!(files.len() >= 5, "{} files: not rotated", files.len());
    let mut on_disk = String::new();
    for file in files.iter().rev() {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.ends_with('\n'),
            "{} ends inside a line",
            file.display()
        );
        let longest = 11 + 61 + 1;
        assert!(
            text.len() <= 4096 + longest,
            "{}: {} bytes, over the cap",
            file.display(),
            text.len()
        );
        on_disk.push_str(&text);
    }
    let kept: Vec<&str> = on_disk
        .lines()
        .filter(|line| !line.starts_with("-- lichtara:"))
        .collect();
    assert_eq!(kept, expected, "the rotated files lost or split lines");
    // `logs -n` reaches back into the rotated files, from their ends.
    let tail = project.lichtara(&["logs", "-n", "300"]);
    assert!(tail.status.success(), "{}", text(&tail));
    let tail = String::from_utf8_lossy(&tail.stdout).to_string();
    let tail: Vec<&str> = tail.lines().collect();
    assert_eq!(tail.len(), 300);
    assert_eq!(
        tail,
        kept[kept.len() - 300..],
        "logs -n 300 across rotated files"
    );
    let status = project.lichtara(&["status"]);
    assert_says(&status, "rotation(s)");
    stop_leaving_nothing(&project);
}

#[test]
fn when_the_main_process_ends_by_itself_its_supervisor_ends_the_rest_and_logs_how() {
    let project = Project::new("ended");
    // The main process leaves a child behind and exits 3 when told to.
    let script = "sleep 1000 & echo forked; while [ ! -e go ]; do sleep 0.01; done; exit 3";
    let started = project.lichtara(&["start", "--", "sh", "-c", script]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    wait_for_log_file(&project, "forked");
    let child = project
        .ours()
        .into_iter()
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == b"sleep\x001000\x00")
        })
        .expect("the child it leaves behind");
    let run = [leader, child];
    let supervisor = supervisor_of(&project, "server");
    std::fs::write(project.dir.join("go"), "").unwrap();
    wait_until("the supervisor's exit", || {
        reap_our_zombies();
        !is_live(supervisor)
    });
    reap_our_zombies();
    assert!(run.iter().all(|pid| !is_live(*pid)), "left behind: {run:?}");
    assert!(!project.state().join("server.pid").exists());
    assert!(!project.state().join("server.sock").exists());
    assert!(project.leaves().is_empty(), "its cgroup is removed");
    wait_for_log_file(
        &project,
        &format!("(pid {leader}) ended by itself: exit code 3"),
    );
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
}

#[test]
fn the_control_socket_answers_only_its_user_and_a_socket_planted_in_its_place_is_not_believed() {
    let project = Project::new("socket");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    let socket = project.state().join("server.sock");
    if let Some(user) = TestUser::create(
        "the_control_socket_answers_only_its_user_and_a_socket_planted_in_its_place_is_not_believed",
    ) {
        // Let the user reach the socket at all (the folder may be 0711;
        // the socket file writable by all): only the supervisor's own
        // check of the peer's uid is left to refuse them.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(project.state(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777)).unwrap();
        let ask = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\ntry:\n    s.sendall(b'{\"op\":\"stop\",\"timeout_ms\":0}\\n')\nexcept BrokenPipeError:\n    pass\nprint(s.makefile().readline().strip())\n";
        let answer = Command::new("python3")
            .args(["-c", ask])
            .arg(&socket)
            .uid(user.uid)
            .env(TOKEN_VAR, &project.token)
            .output()
            .unwrap();
        assert!(answer.status.success(), "{}", text(&answer));
        assert_says(&answer, &format!("refused: uid {}", user.uid));
        assert!(is_live(leader), "another user stopped the service");
        std::fs::set_permissions(project.state(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    // A stranger (of the same user) takes the socket's name from the live
    // supervisor and answers every request with "stopped".
    let fake = "import os, socket, sys\ntry: os.unlink(sys.argv[1])\nexcept FileNotFoundError: pass\ns = socket.socket(socket.AF_UNIX)\ns.bind(sys.argv[1])\ns.listen()\nprint('listening', flush=True)\nwhile True:\n    c, _ = s.accept()\n    try:\n        c.recv(4096)\n        c.sendall(b'{\"stopped\":{\"pid\":1,\"elapsed_ms\":0,\"killed\":0,\"ended\":\"fake\",\"by_itself\":false}}\\n')\n    except OSError:\n        pass\n    c.close()\n";
    let mut stranger = project
        .environment(Command::new("python3"))
        .args(["-c", fake])
        .arg(&socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line_then_close(&mut stranger).trim(), "listening");
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_says(&status, "supervisor: unreachable");
    assert_says(&status, "not by the recorded supervisor");
    // stop asks the live supervisor by SIGTERM instead, and it stops its
    // run as it would have over the socket.
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_says(&stopped, "asking it by SIGTERM");
    reap_our_zombies();
    assert!(
        !is_live(leader),
        "the stranger's word was taken: still running"
    );
    assert!(project.supervisors().is_empty());
    still_running_then_end(stranger, "the stranger is not the service's");
}

#[test]
fn clients_that_hold_the_socket_idle_never_keep_a_stop_from_its_supervisor() {
    let project = Project::new("idle");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    // More idle connections than the supervisor serves at once.
    let socket = project.state().join("server.sock");
    let idle: Vec<_> = (0..140)
        .map(|_| std::os::unix::net::UnixStream::connect(&socket).expect("connect"))
        .collect();
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert!(!text(&status).contains("missing"), "{}", text(&status));
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    reap_our_zombies();
    assert!(!is_live(leader), "still running");
    assert!(project.supervisors().is_empty());
    assert!(!project.state().join("server.pid").exists());
    drop(idle);
}

#[test]
fn the_service_inherits_nothing_that_starts_caller_held_open_nor_a_blocked_signal() {
    let project = Project::new("fds");
    // A pipe left open across exec by whoever runs `start` (a script
    // waiting for EOF on it, a lock it holds).
    let (reader, writer) = rustix::pipe::pipe().unwrap();
    let started = project
        .command(&["start", "--", "sleep", "1000"])
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    drop(writer);
    // EOF only once no process holds the write end: not the service, not
    // its supervisor.
    let mut buffer = [0u8; 1];
    let mut fds = [rustix::event::PollFd::new(
        &reader,
        rustix::event::PollFlags::IN,
    )];
    let timeout = rustix::time::Timespec {
        tv_sec: PATIENCE.as_secs() as i64,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&timeout)).unwrap();
    assert_eq!(
        ready, 1,
        "no EOF within {PATIENCE:?}: the service or its supervisor holds the pipe"
    );
    assert_eq!(
        rustix::io::read(&reader, &mut buffer).unwrap(),
        0,
        "the pipe's write end lives on in the service or its supervisor"
    );
    // The supervisor blocks its stop signals; the service starts with
    // none blocked or ignored.
    let status = std::fs::read_to_string(format!("/proc/{leader}/status")).unwrap();
    for mask in ["SigBlk:", "SigIgn:"] {
        let line = status.lines().find(|line| line.starts_with(mask)).unwrap();
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
    stop_leaving_nothing(&project);
}

#[test]
fn a_supervisor_stops_its_run_at_sigterm_and_one_cut_off_from_its_state_is_found_by_cleanup() {
    let project = Project::new("sigterm");
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    kill_process(
        Pid::from_raw(supervisor_of(&project, "server")).unwrap(),
        Signal::TERM,
    )
    .unwrap();
    wait_until("the supervisor's exit", || {
        reap_our_zombies();
        project.supervisors().is_empty()
    });
    reap_our_zombies();
    assert!(!is_live(leader));
    assert!(!project.state().join("server.pid").exists());
    wait_for_log_file(&project, "the supervisor got signal 15");

    // Its PID file removed by hand: stop and status still reach it.
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    std::fs::remove_file(project.state().join("server.pid")).unwrap();
    let status = project.lichtara(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_says(&status, "PID file is missing");
    let listed = project.lichtara(&["cleanup", "--dry-run"]);
    assert_says(&listed, "no orphaned processes");
    let stopped = project.lichtara(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert_says(&stopped, &format!("stopped `server` (pid {leader})"));
    reap_our_zombies();
    assert!(!is_live(leader) && project.supervisors().is_empty());

    // The whole state folder removed: only cleanup can find the run, by
    // its supervisor, which it asks to stop it.
    let started = project.lichtara(&["start", "--", "sleep", "1000"]);
    assert!(started.status.success(), "{}", text(&started));
    let leader = pid_of(&started);
    std::fs::remove_dir_all(project.state()).unwrap();
    let listed = project.lichtara(&["cleanup", "--dry-run"]);
    assert_says(&listed, "the supervisor of `server`, with no PID file");
    let cleaned = project.lichtara(&["cleanup", "--yes"]);
    assert!(cleaned.status.success(), "{}", text(&cleaned));
    reap_our_zombies();
    assert!(!is_live(leader), "the run outlived its supervisor's stop");
    assert!(project.supervisors().is_empty());
    assert!(project.leaves().is_empty(), "its cgroup is removed");
}

#[test]
fn the_last_lines_are_read_in_order_while_the_log_rotates_fast() {
    let project = Project::new("tail-rotating");
    std::fs::write(
        project.dir.join("Lichtara.toml"),
        "log_max = \"1KiB\"\nlog_keep = 100\n",
    )
    .unwrap();
    // Numbered lines, as fast as it can, rotating the log every few lines.
    let writer = "import sys\ni = 0\nwhile True:\n    sys.stdout.write('L%08d %s\\n' % (i, 'y' * 40))\n    i += 1\n    if i % 10 == 0: sys.stdout.flush()\n";
    std::fs::write(project.dir.join("w.py"), writer).unwrap();
    let started = project.lichtara(&["start", "--", "python3", "w.py"]);
    assert!(started.status.success(), "{}", text(&started));
    wait_until("a few rotations", || {
        std::fs::read_dir(project.state()).is_ok_and(|entries| {
            entries
                .flatten()
                .filter(|entry| {
                    entry
                        .file_name()
                        .to_string_lossy()
                        .starts_with("server.log.0")
                })
                .count()
                >= 10
        })
    });
    // Every round: whole lines in writing order, nothing repeated. (A
    // reader that a busy machine holds back longer than the kept files
    // last gets fewer lines: they were removed before it got to them. One
    // file holds about 20; the whole 200 must come in some round.)
    let mut complete = 0;
    for round in 0..20 {
        let tail = project.lichtara(&["logs", "-n", "200"]);
        assert!(tail.status.success(), "round {round}: {}", text(&tail));
        let numbers: Vec<u64> = String::from_utf8_lossy(&tail.stdout)
            .lines()
            .filter_map(|line| line.strip_prefix('L')?.split(' ').next()?.parse().ok())
            .collect();
        let broken = numbers.windows(2).position(|pair| pair[1] != pair[0] + 1);
        assert!(
            broken.is_none(),
            "round {round}: not the last lines in order, at {broken:?} of {}: {:?}",
            numbers.len(),
            &numbers[broken.unwrap_or(0).saturating_sub(3)
                ..(broken.unwrap_or(0) + 4).min(numbers.len())],
        );
        if numbers.len() >= 199 {
            complete += 1;
        }
    }
    assert!(complete > 0, "no round read back into the rotated files");
    stop_leaving_nothing(&project);
}
