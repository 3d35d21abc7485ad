//! Runs a test binary as a child process. Every child is killed (by its
//! PID, which this harness started) and reaped when its handle drops, pass
//! or fail.

use std::io::Write;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long any one wait of a test may last before it is a failure. Generous:
/// these machines are shared and noisy; no test asserts on speed.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Signals this close together are one request to lichtara (see
/// `REPEAT_WINDOW` in its supervisor), with a margin for a noisy machine.
pub const REPEAT_WINDOW: Duration = Duration::from_millis(300);

/// Waits until a signal sent now counts as a new one rather than a repeat
/// of the one before. Call it once the process has shown that it handled
/// that one (a line it prints after): lichtara measures the window from
/// when it handled the signal, which on a loaded machine can be long after
/// it was sent. A property of time: there is no event to await instead.
pub fn outside_repeat_window() {
    std::thread::sleep(REPEAT_WINDOW);
}

/// Waits until `ready()` holds, polling: for another process's state (a
/// child it forks, a file it writes) there is no event to await. Panics
/// with `what` past [`PATIENCE`], a guard against hangs, not a measure.
#[track_caller]
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < until, "{what} within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Waits until every process of `pids` has exited (a zombie has), on the
/// kernel's word: each one's pidfd turns readable when it exits. `false`
/// if some are still running after [`PATIENCE`].
#[cfg(target_os = "linux")]
pub fn wait_exited(pids: &[i32]) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    use rustix::process::{Pid, PidfdFlags, pidfd_open};
    let until = Instant::now() + PATIENCE;
    // A process that is already gone has no pidfd to open (ESRCH): exited.
    let mut open: Vec<_> = pids
        .iter()
        .filter_map(|pid| pidfd_open(Pid::from_raw(*pid)?, PidfdFlags::empty()).ok())
        .collect();
    while !open.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let timeout = rustix::time::Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds: Vec<PollFd<'_>> = open
            .iter()
            .map(|fd| PollFd::new(fd, PollFlags::IN))
            .collect();
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => panic!("poll on pidfds: {err}"),
        }
        let exited: Vec<bool> = fds.iter().map(|fd| !fd.revents().is_empty()).collect();
        let mut index = 0;
        open.retain(|_| {
            index += 1;
            !exited[index - 1]
        });
    }
    true
}

/// A `name=value` field of the first log line holding `message` (the
/// compact format of `tracing`'s stderr subscriber); panics with the log
/// when there is none.
pub fn log_field(stderr: &str, message: &str, name: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|line| line.contains(message))
        .unwrap_or_else(|| panic!("no {message:?} line in the log:\n{stderr}"));
    line.split_whitespace()
        .find_map(|field| field.strip_prefix(&format!("{name}=")))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
}

/// A running test binary.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    exited: Receiver<()>,
    seen: Vec<String>,
    log: Receiver<String>,
    logged: Vec<String>,
    stderr: Receiver<String>,
}

/// How a test binary ended.
#[derive(Debug)]
pub struct Ended {
    /// Its exit status.
    pub status: ExitStatus,
    /// Every stdout line, in order.
    pub stdout: Vec<String>,
    /// All of stderr (the log).
    pub stderr: String,
}

impl Ended {
    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended the process, if one did.
    #[cfg(unix)]
    pub fn signal(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.status.signal()
    }

    /// Position of `line` in stdout; panics with the output when absent.
    pub fn position(&self, line: &str) -> usize {
        self.stdout
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("no line {line:?} in stdout:\n{self}"))
    }

    /// Whether stdout holds `line`.
    pub fn has(&self, line: &str) -> bool {
        self.stdout.iter().any(|l| l == line)
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout\n{}", self.stdout.join("\n"))?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

impl Proc {
    /// Starts `program` with extra environment variables.
    pub fn start(program: &str, env: &[(&str, &str)]) -> Proc {
        Self::start_with_args(program, &[], env)
    }

    /// Starts `program` with arguments and extra environment variables.
    pub fn start_with_args(program: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        Self::spawn(Self::command(program, args, env))
    }

    /// The command [`Proc::start_with_args`] runs, to adjust before
    /// [`Proc::spawn`]: stdin is null, stdout and stderr piped.
    pub fn command(program: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(program);
        command.args(args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("LICHTARA_SHUTDOWN_TIMEOUT")
            .env_remove("LICHTARA_HOOKS")
            // A hook that panics in its first poll is inside that poll
            // while the panic hook prints; a backtrace symbolised on a
            // loaded machine took longer than the hook's timeout, and the
            // hook was rightly reported timed out instead of panicked.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        command
    }

    /// Starts a command from [`Proc::command`]; with `Stdio::piped()` for
    /// stdin, [`Proc::send_line`] writes to it.
    pub fn spawn(mut command: Command) -> Proc {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {program}: {err}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (exit_tx, exited) = channel();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        std::thread::spawn(move || {
            use nix::sys::wait::{Id, WaitPidFlag, waitid};
            // WNOWAIT: learn of the exit without reaping, so the PID stays
            // the child's until `Child::wait` reaps it below.
            let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            let _ = exit_tx.send(());
        });
        let (log_tx, log) = channel();
        let (text_tx, stderr_text) = channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(&mut stderr).lines() {
                let Ok(line) = line else { break };
                text.push_str(&line);
                text.push('\n');
                let _ = log_tx.send(line);
            }
            let _ = text_tx.send(text);
        });
        Proc {
            child,
            stdin,
            lines,
            exited,
            seen: Vec::new(),
            log,
            logged: Vec::new(),
            stderr: stderr_text,
        }
    }

    /// Writes `line` to the child's stdin (piped through [`Proc::spawn`]).
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin was not piped");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .expect("write to the child's stdin");
    }

    /// The child's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until stdout shows `line`; panics after [`PATIENCE`].
    pub fn wait_for_line(&mut self, line: &str) {
        let until = Instant::now() + PATIENCE;
        while !self.seen.iter().any(|l| l == line) {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(next) => self.seen.push(next),
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {line:?} within {PATIENCE:?}; stdout so far: {:?}",
                        self.seen
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let ended = self.wait();
                    panic!("the process ended before printing {line:?}:\n{ended}")
                }
            }
        }
    }

    /// Waits for a stdout line starting with `prefix` and returns it.
    pub fn wait_for_prefix(&mut self, prefix: &str) -> String {
        self.wait_for_lines(prefix, 1);
        self.seen
            .iter()
            .find(|l| l.starts_with(prefix))
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until stdout has shown `count` lines that start with
    /// `prefix`; panics after [`PATIENCE`].
    pub fn wait_for_lines(&mut self, prefix: &str, count: usize) {
        let until = Instant::now() + PATIENCE;
        while self.seen.iter().filter(|l| l.starts_with(prefix)).count() < count {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(next) => self.seen.push(next),
                Err(_) => panic!(
                    "fewer than {count} lines {prefix:?} within {PATIENCE:?}: {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits until stderr (the log) has a line containing `needle`; panics
    /// after [`PATIENCE`].
    pub fn wait_for_log(&mut self, needle: &str) {
        let until = Instant::now() + PATIENCE;
        while !self.logged.iter().any(|l| l.contains(needle)) {
            let left = until.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(next) => self.logged.push(next),
                Err(_) => panic!(
                    "no log line with {needle:?} within {PATIENCE:?}: {:?}",
                    self.logged
                ),
            }
        }
    }

    /// The lines stdout has shown so far (after the waits above).
    pub fn stdout_so_far(&self) -> &[String] {
        &self.seen
    }

    /// Sends `signal` to the child (by the PID this harness started).
    #[cfg(unix)]
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"));
        nix::sys::signal::kill(pid, signal).expect("signal the child");
    }

    /// Waits for the child to exit; panics (after killing it) past
    /// [`PATIENCE`].
    pub fn wait(&mut self) -> Ended {
        if self.exited.recv_timeout(PATIENCE).is_err() {
            let _ = self.child.kill();
            let status = self.child.wait();
            panic!(
                "still running after {PATIENCE:?} (killed: {status:?}); stdout: {:?}",
                self.seen
            );
        }
        let status = self.child.wait().expect("reap the child");
        while let Ok(line) = self.lines.recv_timeout(PATIENCE) {
            self.seen.push(line);
        }
        // A descendant that inherited the pipe may hold it open: wait for
        // the end of stderr within PATIENCE, then take what was read.
        let stderr = self.stderr.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            while let Ok(line) = self.log.try_recv() {
                self.logged.push(line);
            }
            self.logged.join("\n")
        });
        Ended {
            status,
            stdout: std::mem::take(&mut self.seen),
            stderr,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Pass or fail, the child does not outlive its test.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// The report at `path`, checked against the documented schema (Python's
/// `jsonschema`, which `.ci/run` installs).
pub fn valid_report(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).expect("the report was written");
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../lichtara-cleanup/report.schema.json"
    );
    let check = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             jsonschema.validate(json.load(open(sys.argv[2])), schema, cls=jsonschema.Draft202012Validator)",
        ])
        .arg(schema)
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "the report does not match the schema (is Python's jsonschema installed?):\n{}\n{text}",
        String::from_utf8_lossy(&check.stderr)
    );
    text
}
