//! One generation of the service: one start of its command, in a cgroup
//! leaf of its own below the service's (`<name>/g<N>`), with its own
//! output pipe, read into the shared log and into a tail of its last
//! lines (what a failed start or reload shows). A reload runs two
//! generations side by side; ending one never touches the other: the
//! cgroup (or, without one, the process group) tells them apart.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::process::{Pid, PidfdFlags, pidfd_open};

use super::child::{self, Launch};
use super::lock_log;
use super::log::RotatingLog;
use crate::Failure;
use crate::commands::stop::{self, Reach};
use crate::containment::{Containment, Leaf};
use crate::listeners::Held;
use crate::ownership::Claim;
use crate::pidfile::Record;
use crate::procfs;
use crate::project::Project;
use crate::terminate::Pinned;

/// What every generation is started with.
pub(super) struct Spawner<'a> {
    pub(super) project: &'a Project,
    pub(super) marker: &'a str,
    pub(super) containment: &'a Containment,
    pub(super) lock_fd: i32,
    pub(super) held: &'a [Held],
    pub(super) notify: Option<&'a str>,
    pub(super) log: &'a Arc<Mutex<RotatingLog>>,
    /// The environment the settings give the service.
    pub(super) env: &'a std::collections::BTreeMap<String, String>,
    pub(super) watchdog: Option<Duration>,
}

/// A running (or ended, unreaped) generation.
pub(super) struct Generation {
    pub(super) number: u32,
    /// The command it runs.
    pub(super) command: Vec<String>,
    pub(super) child: Child,
    pub(super) pid: i32,
    pub(super) start_time: u64,
    pub(super) pidfd: OwnedFd,
    /// Its own cgroup, below the service's.
    pub(super) leaf: Option<Leaf>,
    pub(super) began: Instant,
    tail: Arc<Mutex<Tail>>,
    /// Says when its output pipe has been read to the end.
    pump_done: std::sync::mpsc::Receiver<()>,
}

impl Spawner<'_> {
    /// Starts generation `number`, running `command`.
    pub(super) fn spawn(&self, number: u32, command: &[String]) -> Result<Generation, Failure> {
        let leaf = match self.containment {
            Containment::Cgroup(service) => Some(service.generation(number).map_err(|err| {
                Failure::new(format!(
                    "cannot create the cgroup of generation {number} below {}: {err}",
                    service.path.display()
                ))
            })?),
            Containment::GroupAndMarker(_) => None,
        };
        let procs = match &leaf {
            Some(leaf) => Some(leaf.procs_for_entry().map_err(|err| {
                Failure::new(format!("cannot enter {}: {err}", leaf.path.display()))
            })?),
            None => None,
        };
        let (output, output_in) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|err| Failure::new(format!("cannot make the output pipe: {err}")))?;
        let spawned = child::spawn(Launch {
            project: self.project,
            command,
            marker: self.marker,
            output: output_in,
            cgroup_fd: procs.as_ref().map(AsRawFd::as_raw_fd),
            lock_fd: self.lock_fd,
            held: self.held,
            notify: self.notify,
            generation: number,
            env: self.env,
            watchdog: self.watchdog,
        });
        drop(procs);
        let child = match spawned {
            Ok(child) => child,
            Err(failure) => {
                if let Some(leaf) = &leaf {
                    leaf.remove();
                }
                return Err(failure);
            }
        };
        let pid = child.id() as i32;
        let end = |child: Child, why: String| {
            child::end_unrecorded(child, leaf.as_ref());
            Failure::new(format!("{why}; `{}` was ended", command[0]))
        };
        let pidfd = match pidfd_open(
            Pid::from_raw(pid).expect("a child has a pid"),
            PidfdFlags::empty(),
        ) {
            Ok(pidfd) => pidfd,
            Err(err) => return Err(end(child, format!("cannot watch it (pidfd: {err})"))),
        };
        let start_time = match procfs::stat(pid) {
            Ok(stat) => stat.start_time,
            Err(err) => return Err(end(child, format!("cannot read /proc/{pid}: {err}"))),
        };
        let tail = Arc::new(Mutex::new(Tail::default()));
        let pump_done = pump(File::from(output), self.log.clone(), tail.clone());
        Ok(Generation {
            number,
            command: command.to_vec(),
            child,
            pid,
            start_time,
            pidfd,
            leaf,
            began: Instant::now(),
            tail,
            pump_done,
        })
    }
}

impl Generation {
    /// Whether `pid` (a sender of `READY=1`, say) is of this generation.
    pub(super) fn owns(&self, pid: i32) -> bool {
        if pid == self.pid {
            return true;
        }
        match &self.leaf {
            Some(leaf) => leaf.holds(pid),
            None => procfs::stat(pid).is_ok_and(|stat| stat.pgrp == self.pid),
        }
    }

    /// Whether its main process has ended (its pidfd is readable).
    pub(super) fn exited(&self) -> bool {
        let mut fds = [rustix::event::PollFd::new(
            &self.pidfd,
            rustix::event::PollFlags::IN,
        )];
        matches!(rustix::event::poll(&mut fds, Some(&rustix::time::Timespec::default())), Ok(n) if n > 0)
    }

    /// The record that names this generation.
    pub(super) fn record(&self, base: &Record) -> Record {
        Record {
            pid: self.pid,
            pgid: self.pid,
            start_time: self.start_time,
            command: self.command.clone(),
            ..base.clone()
        }
    }

    /// Its last lines of output, indented for a message.
    pub(super) fn last_lines(&self) -> String {
        let tail = self
            .tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tail.lines(TAIL_LINES)
    }

    /// Ends this generation alone: the stop signal to its main process and
    /// to the members of its cgroup (or process group, and what carries
    /// its generation's marker), `timeout`, then SIGKILL; reaps it, and
    /// waits a little for the end of its output. Returns how it ended, how
    /// many needed SIGKILL, and the survivors if any.
    pub(super) fn end(
        mut self,
        base: &Record,
        signal: rustix::process::Signal,
        timeout: Duration,
    ) -> Ended {
        let reach = Reach::Generation(self.number);
        let record = self.record(base);
        let claim = Claim::of(&record, self.leaf.as_ref());
        let targets: Vec<Pinned> = Pinned::open(self.pid).into_iter().collect();
        let stopped = stop::end_run(
            self.leaf.as_ref(),
            targets,
            &record,
            claim,
            signal,
            timeout,
            reach,
        );
        let status = self.child.wait();
        // A process outside its cgroup (without one: that left its group
        // and its marker) may hold the pipe: not waited for long.
        let _ = self.pump_done.recv_timeout(GENERATION_PUMP_WAIT);
        Ended {
            how: status
                .as_ref()
                .map_or_else(|err| format!("unknown ({err})"), super::describe),
            stopped,
            tail: self.last_lines(),
        }
    }

    /// Reaps it once it has ended (and the rest of its run was ended with
    /// the service's cgroup), waiting for the end of its output.
    pub(super) fn reap(mut self) -> String {
        let status = self.child.wait();
        let _ = self.pump_done.recv_timeout(super::PUMP_WAIT);
        status
            .as_ref()
            .map_or_else(|err| format!("unknown ({err})"), super::describe)
    }
}

/// How a generation ended.
pub(super) struct Ended {
    /// `exit code 0`, `signal 9`.
    pub(super) how: String,
    /// How many needed SIGKILL, or the survivors.
    pub(super) stopped: Result<usize, Vec<i32>>,
    /// Its last lines of output ([`Generation::last_lines`]).
    pub(super) tail: String,
}

/// How long the end of one generation waits for the end of its output.
const GENERATION_PUMP_WAIT: Duration = Duration::from_secs(1);

/// How many lines a failure shows.
const TAIL_LINES: usize = 12;

/// The last bytes a generation wrote.
#[derive(Default)]
struct Tail {
    bytes: VecDeque<u8>,
}

/// The most of a generation's output kept for its tail.
const TAIL_BYTES: usize = 8 << 10;

impl Tail {
    fn push(&mut self, data: &[u8]) {
        let data = &data[data.len().saturating_sub(TAIL_BYTES)..];
        let overflow = (self.bytes.len() + data.len()).saturating_sub(TAIL_BYTES);
        self.bytes.drain(..overflow);
        self.bytes.extend(data);
    }

    /// The last `count` lines, each indented by `  | `; empty if none.
    fn lines(&self, count: usize) -> String {
        let (front, back) = self.bytes.as_slices();
        let text = String::from_utf8_lossy(&[front, back].concat()).into_owned();
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        lines[lines.len().saturating_sub(count)..]
            .iter()
            .map(|line| format!("\n  | {line}"))
            .collect()
    }
}

/// Copies a generation's output into the log (and its tail) on a thread
/// of its own, so that the service never waits on the supervisor's other
/// work; the receiver hears when the pipe has been read to its end (every
/// process holding its write end has ended).
fn pump(
    mut output: File,
    log: Arc<Mutex<RotatingLog>>,
    tail: Arc<Mutex<Tail>>,
) -> std::sync::mpsc::Receiver<()> {
    let (done, done_rx) = std::sync::mpsc::channel();
    let log_for_note = log.clone();
    let spawned = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match output.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => {
                        lock_log(&log).write(&buffer[..read]);
                        tail.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push(&buffer[..read]);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
    if spawned.is_err() {
        // No thread: the read end is closed with the closure, so the
        // service's writes fail (EPIPE) rather than block.
        lock_log(&log_for_note).note("cannot start the log thread: the service's output is lost");
    }
    done_rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_last_lines_and_bytes() {
        let mut tail = Tail::default();
        assert_eq!(tail.lines(3), "");
        tail.push(b"one\ntwo\n\nthree\nfour");
        assert_eq!(tail.lines(2), "\n  | three\n  | four");
        tail.push(&vec![b'x'; TAIL_BYTES * 2]);
        assert_eq!(tail.bytes.len(), TAIL_BYTES);
    }
}
