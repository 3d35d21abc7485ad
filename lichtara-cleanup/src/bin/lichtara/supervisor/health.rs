//! The service's health check (`health` in `Lichtara.toml`), on a thread
//! of its own so that a slow probe never holds the supervisor's loop: every
//! `interval`, a `GET` answered 2xx or 3xx, a TCP connection accepted, or a
//! command that exits 0, each within `timeout`. Only a generation that is
//! ready is checked, from its readiness on. After `failures` failures in a
//! row the generation is reported to the loop (an eventfd it polls), which
//! restarts the service through its normal stop path; each failure is in
//! the log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::event::{EventfdFlags, PollFd, PollFlags, eventfd, poll};

use super::lock_log;
use super::log::RotatingLog;
use crate::Failure;
use crate::config::{Health, Probe};

/// The checking thread, and what the loop hears from it.
pub(super) struct Checker {
    shared: Arc<Shared>,
    wake: Arc<OwnedFd>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The generation checked, if any.
    watching: Option<u32>,
    /// A generation that failed its checks, and the last failure.
    failed: Option<(u32, String)>,
    /// The supervisor is ending.
    stop: bool,
}

/// Where an `exec` check runs, and with what environment.
pub(super) struct Place {
    pub(super) dir: PathBuf,
    pub(super) env: std::collections::BTreeMap<String, String>,
}

impl Checker {
    /// Starts the thread (idle until [`Checker::watch`]).
    pub(super) fn start(
        health: Health,
        place: Place,
        log: Arc<Mutex<RotatingLog>>,
    ) -> Result<Self, Failure> {
        let wake = Arc::new(
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|err| Failure::new(format!("cannot make an eventfd: {err}")))?,
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let (checking, waking) = (Arc::clone(&shared), Arc::clone(&wake));
        std::thread::Builder::new()
            .name("health".into())
            .spawn(move || check(&health, &place, &checking, &waking, &log))
            .map_err(|err| Failure::new(format!("cannot start the health thread: {err}")))?;
        Ok(Self { shared, wake })
    }

    /// Checks generation `number` from now on (its count starts at 0).
    pub(super) fn watch(&self, number: u32) {
        let mut state = self.shared.lock();
        state.watching = Some(number);
        state.failed = None;
        self.shared.changed.notify_all();
    }

    /// Checks nothing until the next [`Checker::watch`].
    pub(super) fn pause(&self) {
        self.shared.lock().watching = None;
        self.shared.changed.notify_all();
    }

    /// Readable once a generation failed its checks.
    pub(super) fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }

    /// The generation that failed its checks, and why.
    pub(super) fn failed(&self) -> Option<(u32, String)> {
        let mut buffer = [0u8; 8];
        let _ = rustix::io::read(&*self.wake, &mut buffer);
        self.shared.lock().failed.take()
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The thread: waits for a generation to watch, then probes it every
/// interval until it is no longer the one watched.
fn check(
    health: &Health,
    place: &Place,
    shared: &Shared,
    wake: &OwnedFd,
    log: &Mutex<RotatingLog>,
) {
    let mut in_a_row = 0u32;
    let mut checked: Option<u32> = None;
    loop {
        // The next probe: an interval after the last (or after the watch
        // began), unless the watch changes meanwhile.
        let generation = {
            let mut state = shared.lock();
            loop {
                if state.stop {
                    return;
                }
                if state.watching.is_some() {
                    break;
                }
                state = shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let watching = state.watching;
            if watching != checked {
                checked = watching;
                in_a_row = 0;
            }
            let due = Instant::now() + health.interval;
            loop {
                let left = due.saturating_duration_since(Instant::now());
                if state.stop || state.watching != watching || left.is_zero() {
                    break;
                }
                state = shared
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            if state.stop {
                return;
            }
            if state.watching != watching {
                continue;
            }
            watching.expect("watched")
        };
        let outcome = probe(&health.probe, health.timeout, place);
        let mut state = shared.lock();
        if state.watching != Some(generation) {
            continue;
        }
        match outcome {
            Ok(()) => in_a_row = 0,
            Err(why) => {
                in_a_row += 1;
                let what = format!(
                    "health check {} failed ({in_a_row} of {} in a row): {why}",
                    health.probe.describe(),
                    health.failures
                );
                lock_log(log).note(&what);
                if in_a_row >= health.failures {
                    state.failed = Some((generation, what));
                    state.watching = None;
                    let _ = rustix::io::write(wake, &1u64.to_ne_bytes());
                }
            }
        }
    }
}

/// One probe, within `timeout`.
fn probe(probe: &Probe, timeout: Duration, place: &Place) -> Result<(), String> {
    match probe {
        Probe::Tcp(address) => TcpStream::connect_timeout(address, timeout)
            .map(drop)
            .map_err(|err| format!("cannot connect: {err}")),
        Probe::Http {
            address,
            host,
            path,
        } => http(*address, host, path, timeout),
        Probe::Exec(command) => exec(command, timeout, place),
    }
}

fn http(
    address: std::net::SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<(), String> {
    let began = Instant::now();
    let left = || {
        timeout
            .saturating_sub(began.elapsed())
            .max(Duration::from_millis(1))
    };
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|err| format!("cannot connect: {err}"))?;
    let _ = stream.set_write_timeout(Some(left()));
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: lichtara-health\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .map_err(|err| format!("cannot send the request: {err}"))?;
    let mut head = Vec::new();
    let mut buffer = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 1024 {
        let _ = stream.set_read_timeout(Some(left()));
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(format!("no answer within {timeout:?}: {err}")),
        }
        if began.elapsed() >= timeout {
            return Err(format!("no answer within {timeout:?}"));
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let status: Option<u16> = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok());
    match status {
        Some(200..=399) => Ok(()),
        Some(code) => Err(format!("answered {code}")),
        None if line.is_empty() => Err("closed without an answer".into()),
        None => Err(format!("answered {line:?}, not HTTP")),
    }
}

/// Runs the command (in the project folder, with the service's
/// environment, in a process group of its own); it must exit 0 within
/// `timeout`, or its group is killed.
fn exec(command: &[String], timeout: Duration, place: &Place) -> Result<(), String> {
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(&place.dir)
        .envs(&place.env)
        .env_remove(crate::protocol::SUPERVISOR_VAR)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| format!("cannot run `{}`: {err}", command[0]))?;
    let pid = child.id() as i32;
    let ended = rustix::process::Pid::from_raw(pid)
        .and_then(|pid| rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok())
        .is_some_and(|pidfd| {
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            let timespec = rustix::time::Timespec {
                tv_sec: timeout.as_secs() as i64,
                tv_nsec: i64::from(timeout.subsec_nanos()),
            };
            matches!(poll(&mut fds, Some(&timespec)), Ok(n) if n > 0)
        });
    if !ended {
        // Our own child's group (it leads it, and is not reaped yet).
        if let Some(group) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = child.wait();
        return Err(format!(
            "`{}` did not end within {timeout:?}",
            command.join(" ")
        ));
    }
    match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!(
            "`{}` ended: {}",
            command.join(" "),
            super::describe(&status)
        )),
        Err(err) => Err(format!("cannot wait for `{}`: {err}", command[0])),
    }
}
