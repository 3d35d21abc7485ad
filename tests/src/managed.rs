//! A temporary project managed by the `lichtara` CLI, for tests that drive
//! the manager from another package (the reload suite, with the reference
//! server and the load generator).
//!
//! Everything the manager starts for it carries `LICHTARA_TEST_RUN=<token>`
//! (unique to the project), lives in a cgroup subtree named for the test
//! run where a writable cgroup v2 exists, and is ended by PID (found by the
//! token) or by that subtree's `cgroup.kill` when the project is dropped,
//! pass or fail. The test process becomes a child subreaper, so that the
//! detached supervisors are re-parented to it and reaped here.

#![cfg(target_os = "linux")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const TOKEN_VAR: &str = "LICHTARA_TEST_RUN";

/// One project directory and the manager binary that manages it.
pub struct Managed {
    /// The project directory.
    pub dir: PathBuf,
    lichtara: PathBuf,
    token: String,
    /// This project's cgroup subtree (`LICHTARA_CGROUP_BASE`), if any.
    pub cgroups: Option<PathBuf>,
    no_cgroup: bool,
}

impl Managed {
    /// A fresh project for test `test`, managed by the `lichtara` binary
    /// beside `sibling` (another binary of the same target folder).
    pub fn new(test: &str, sibling: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("become a subreaper");
        let lichtara = Path::new(sibling).with_file_name("lichtara");
        assert!(
            lichtara.exists(),
            "{} is missing: `cargo test --workspace` builds it (or `cargo build -p lichtara-cleanup --features cli`)",
            lichtara.display()
        );
        let token = format!(
            "{test}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(format!("lichtara-managed-{token}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the project directory");
        let cgroups = cgroup2_mount()
            .map(|mount| mount.join(format!("lichtara-test-{token}")))
            .filter(|base| std::fs::create_dir(base).is_ok());
        Self {
            dir,
            lichtara,
            token,
            cgroups,
            no_cgroup: false,
        }
    }

    /// The same project without a cgroup: the manager is given a base it
    /// cannot use, and contains by process group and marker only.
    pub fn without_cgroup(mut self) -> Self {
        if let Some(base) = self.cgroups.take() {
            remove_cgroups(&base);
        }
        self.no_cgroup = true;
        self
    }

    /// Writes `Lichtara.toml`.
    pub fn settings(&self, text: &str) {
        std::fs::write(self.dir.join("Lichtara.toml"), text).expect("write Lichtara.toml");
    }

    /// `lichtara ARGS` in the project, waited for.
    pub fn lichtara(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lichtara")
    }

    /// `lichtara ARGS` in the project, to spawn (stdin null).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.lichtara);
        command
            .args(args)
            .current_dir(&self.dir)
            .env(TOKEN_VAR, &self.token)
            .stdin(Stdio::null());
        match &self.cgroups {
            Some(base) => command.env("LICHTARA_CGROUP_BASE", base),
            // Under /proc nothing can be made: the manager says so.
            None if self.no_cgroup => {
                command.env("LICHTARA_CGROUP_BASE", "/proc/lichtara-no-cgroup")
            }
            None => command.env_remove("LICHTARA_CGROUP_BASE"),
        };
        command
    }

    /// Live processes of this project (supervisors included), by token.
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("{TOKEN_VAR}={}", self.token);
        let mut found = Vec::new();
        for pid in all_pids() {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            if env.split(|b| *b == 0).any(|e| e == needle.as_bytes()) && alive(pid) {
                found.push(pid);
            }
        }
        found
    }

    /// `lichtara stop`, which must succeed and leave no process of the
    /// project.
    #[track_caller]
    pub fn stop_leaving_nothing(&self) {
        let stopped = self.lichtara(&["stop"]);
        assert!(stopped.status.success(), "{}", text(&stopped));
        assert_eq!(self.processes(), Vec::<i32>::new(), "nothing is left");
    }

    /// The service's log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!(".lichtara/{name}.log"))).unwrap_or_default()
    }

    /// Waits until service `name`'s log holds `needle`, woken by the
    /// log's changes; panics, with the log, if the project has no process
    /// left to write it.
    pub fn wait_for_log(&self, name: &str, needle: &str) {
        let path = self.dir.join(format!(".lichtara/{name}.log"));
        wait_for_text(&path, needle, || !self.processes().is_empty());
    }
}

/// Waits until the file at `path` holds `needle`, woken by inotify
/// events of its folder (it may not exist yet, or be replaced); between
/// events it asks `alive` at least once a second whether anything may
/// still write it, and panics with the file's text if not. No deadline:
/// a loaded machine only makes it wait longer. Returns the text.
pub fn wait_for_text(path: &Path, needle: &str, mut alive: impl FnMut() -> bool) -> String {
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    let dir = path.parent().expect("a file in a folder");
    std::fs::create_dir_all(dir).expect("the file's folder");
    let watcher = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).expect("inotify");
    inotify::add_watch(
        &watcher,
        dir,
        WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::CLOSE_WRITE,
    )
    .expect("watch the folder");
    let mut buffer = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        // Read after the watch exists: no change falls between.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            alive(),
            "{needle:?} never came, and nothing is left to write it: {text}"
        );
        let mut fds = [rustix::event::PollFd::new(
            &watcher,
            rustix::event::PollFlags::IN,
        )];
        // A wake-up to look at `alive` again, not a deadline.
        let second = rustix::time::Timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        let _ = rustix::event::poll(&mut fds, Some(&second));
        let mut reader = inotify::Reader::new(&watcher, &mut buffer);
        while reader.next().is_ok() {}
    }
}

/// A few lines of Python that serve on descriptor 3 (socket activation)
/// and answer with their PID.
pub fn python_server(project: &Managed) {
    std::fs::write(
        project.dir.join("server.py"),
        "import os, socket, http.server\n\
         assert os.environ['LISTEN_PID'] == str(os.getpid())\n\
         assert os.environ['LISTEN_FDNAMES'] == 'http'\n\
         class Handler(http.server.BaseHTTPRequestHandler):\n\
         \x20   protocol_version = 'HTTP/1.1'\n\
         \x20   def do_GET(self):\n\
         \x20       body = b'%d\\n' % os.getpid()\n\
         \x20       self.send_response(200)\n\
         \x20       self.send_header('Content-Length', str(len(body)))\n\
         \x20       self.send_header('Connection', 'close')\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(body)\n\
         \x20   def log_message(self, *args):\n\
         \x20       pass\n\
         server = http.server.HTTPServer(('127.0.0.1', 0), Handler, bind_and_activate=False)\n\
         server.socket = socket.socket(fileno=3)\n\
         print('serving on descriptor 3', flush=True)\n\
         server.serve_forever()\n",
    )
    .unwrap();
}

/// The PID the Python server answers with.
pub fn answered_by(port: u16) -> i32 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .rsplit("\r\n\r\n")
        .next()
        .and_then(|body| body.trim().parse().ok())
        .unwrap_or_else(|| panic!("no PID in {answer:?}"))
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The command's stdout and stderr, for assertion messages.
pub fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The PID a successful `start`, `reload` or `restart` printed.
pub fn printed_pid(output: &Output) -> i32 {
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no PID printed: {}", text(output)))
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

impl Drop for Managed {
    fn drop(&mut self) {
        // Pass or fail: what the project started goes, by PID.
        for pid in self.processes() {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        if let Some(base) = &self.cgroups {
            let _ = std::fs::write(base.join("cgroup.kill"), "1");
            let began = Instant::now();
            while !std::fs::read_to_string(base.join("cgroup.events"))
                .map_or(true, |events| events.contains("populated 0"))
                && began.elapsed() < Duration::from_secs(20)
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        reap_adopted();
        if let Some(base) = &self.cgroups {
            remove_cgroups(base);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reaps the zombies re-parented to this process that lead a process group
/// of their own (what the manager starts does): never `waitpid(-1)`, which
/// could take a child another test waits for.
fn reap_adopted() {
    let me = std::process::id() as i32;
    let our_group = rustix::process::getpgrp().as_raw_nonzero().get();
    for pid in all_pids() {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let (Some(state), Some(ppid), Some(pgrp)) = (fields.first(), fields.get(1), fields.get(2))
        else {
            continue;
        };
        if *state == "Z" && ppid.parse() == Ok(me) && pgrp.parse() != Ok(our_group) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
            }
        }
    }
}

/// Every PID in /proc now.
fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

fn remove_cgroups(dir: &Path) {
    for below in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if below.file_type().is_ok_and(|kind| kind.is_dir()) {
            remove_cgroups(&below.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let separator = fields.iter().position(|field| *field == "-")?;
        (fields.get(separator + 1) == Some(&"cgroup2")).then(|| PathBuf::from(fields[4]))
    })
}
