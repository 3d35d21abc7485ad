//! The per-service supervisor. `lichtara start` runs this same binary in an
//! internal mode (`lichtara __supervise`), detached in a session of its
//! own, as s6-supervise and runit's runsv supervise theirs; it owns the
//! service for the service's whole life:
//!
//! 1. it holds the name's lock, which `start` took and handed down (a
//!    second start of the name is refused while it lives; the service
//!    inherits the lock too, so a service whose supervisor was killed
//!    still holds it), and clears a stale record away (`claim`);
//! 2. spawns the service (`child`) in its cgroup leaf (`containment`) or,
//!    without one, its own process group, with the run's marker, its
//!    stdout and stderr a pipe that the supervisor reads;
//! 3. writes the record (the PID file, naming itself as supervisor),
//!    reports to `start` once the start grace has passed (or why the
//!    service did not start), and answers `status` and `stop` on its
//!    socket (`control`);
//! 4. writes what the service prints into the capped, rotated log (`log`);
//! 5. when the service's main process ends, or a stop is asked for, ends
//!    whatever is left of the run (the stop signal, the timeout, SIGKILL,
//!    the cgroup removed), removes the record it wrote, writes the last
//!    log line, answers, and exits.
//!
//! Its own process (`setup`) keeps only what `start` handed down, and
//! takes SIGTERM, SIGINT and SIGHUP as a stop. Signals go only to its own
//! unreaped child (whose PID cannot be
//! recycled) and to processes that pass the ownership proofs; never to a
//! group.

mod child;
mod claim;
mod control;
pub(crate) mod log;
mod setup;

pub(crate) use self::claim::locked;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitCode, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signalfd::SignalFd;
use rustix::event::{PollFd, PollFlags, poll};
use rustix::process::{Pid, PidfdFlags, pidfd_open};

use self::control::{Control, Phase};
use self::log::RotatingLog;
use crate::commands::stop;
use crate::containment::{self, Containment};
use crate::exit::Exit;
use crate::ownership::Claim;
use crate::project::Project;
use crate::protocol::{Report, SUPERVISOR_VAR, StopReply, socket_name};
use crate::record::{self, Lock, Record};
use crate::state::{StateDir, StateFile};
use crate::terminate::Pinned;
use crate::{Failure, procfs};

/// The supervisor's entry: `report_fd` is the pipe `start` reads,
/// `lock_fd` the name's lock, which `start` took.
pub(crate) fn run(
    project: &Project,
    name: &str,
    report_fd: i32,
    lock_fd: i32,
    command: &[String],
) -> ExitCode {
    // Whatever `start`'s caller left open (a script's lock, a pipe it
    // waits on) is not the service's to keep.
    setup::close_inherited(&[report_fd, lock_fd]);
    let mut report = Reporter::adopt(report_fd);
    let Some(lock) = setup::adopt_lock(lock_fd) else {
        report.send(&Report::Failed {
            message: format!("the supervisor of `{name}` was not given its lock"),
            code: Exit::Failure.code(),
        });
        return ExitCode::from(Exit::Failure);
    };
    // SIGTERM, SIGINT and SIGHUP ask for a stop, as `lichtara stop` does:
    // blocked in every thread (none has started yet) and read from a
    // signalfd by the main loop. The service starts with an empty mask.
    let signals = match setup::stop_signals() {
        Ok(signals) => signals,
        Err(err) => {
            report.send(&Report::Failed {
                message: format!("the supervisor cannot take its signals: {err}"),
                code: Exit::Failure.code(),
            });
            return ExitCode::from(Exit::Failure);
        }
    };
    let marker = match std::env::var(SUPERVISOR_VAR) {
        Ok(marker)
            if marker.starts_with(&project.marker_prefix())
                && marker.split('/').nth(1) == Some(name) =>
        {
            marker
        }
        _ => {
            report.send(&Report::Failed {
                message: format!(
                    "the supervisor of `{name}` was not given this project's marker (was the project directory moved or replaced during `start`?)"
                ),
                code: Exit::Failure.code(),
            });
            return ExitCode::from(Exit::Failure);
        }
    };
    match Service::start(project, name, command, marker, lock, &mut report) {
        Ok(service) => service.supervise(project, report, &signals),
        Err(failure) => {
            let code = failure.code();
            report.send(&Report::Failed {
                message: failure.message().to_owned(),
                code: code.code(),
            });
            ExitCode::from(code)
        }
    }
}

/// The pipe to `start`: closed once the service has started or failed.
struct Reporter(Option<File>);

impl Reporter {
    /// The service must not inherit it: `start` waits for its end.
    fn adopt(fd: i32) -> Self {
        Self(setup::adopt(fd))
    }

    fn send(&mut self, report: &Report) {
        let final_one = !matches!(report, Report::Note(_));
        if let Some(file) = &mut self.0
            && let Ok(mut line) = serde_json::to_string(report)
        {
            line.push('\n');
            // `start` may be gone (Ctrl-C): the service runs on anyway.
            let _ = file.write_all(line.as_bytes());
        }
        if final_one {
            self.0 = None;
        }
    }
}

/// A running service and what its supervisor holds for it.
struct Service {
    name: String,
    child: Child,
    pidfd: OwnedFd,
    record: Record,
    pid_path: StateFile,
    state: StateDir,
    containment: Containment,
    log: Arc<Mutex<RotatingLog>>,
    /// Says when the pipe from the service has been read to its end.
    pump_done: std::sync::mpsc::Receiver<()>,
    control: Control,
    lock: Lock,
}

/// Why the supervision ended.
enum Ending {
    /// The main process ended by itself.
    Exited,
    /// A stop was asked for.
    Stop(Duration),
}

impl Service {
    fn start(
        project: &Project,
        name: &str,
        command: &[String],
        marker: String,
        lock: Lock,
        report: &mut Reporter,
    ) -> Result<Self, Failure> {
        let state = project.state_dir()?;
        let pid_path = record::pid_path(&state, name);
        claim::clear_the_way(project, name, &pid_path, report)?;
        let (log_max, log_keep) = project.log_limits()?;
        let log = Arc::new(Mutex::new(RotatingLog::open(
            &state, name, log_max, log_keep,
        )?));
        let containment = Containment::of(project, name, true);
        let cgroup_procs = match &containment {
            Containment::Cgroup(leaf) if leaf.populated() => {
                return Err(containment::still_populated(leaf, name));
            }
            Containment::Cgroup(leaf) => Some(leaf.procs_for_entry().map_err(|err| {
                Failure::new(format!("cannot enter {}: {err}", leaf.path.display()))
            })?),
            Containment::GroupAndMarker(_) => None,
        };
        // Listening before the service exists: a stop may come at once.
        let control = Control::listen(&state, name, log.clone(), containment.describe())?;
        // From here on a failure leaves nothing behind: the socket, the
        // leaf (the spawn undoes the rest itself), and a line in the log.
        let spawned = (|| {
            let (output, output_in) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|err| Failure::new(format!("cannot make the output pipe: {err}")))?;
            let child = child::spawn(
                project,
                command,
                &marker,
                output_in,
                cgroup_procs.as_ref().map(|file| file.as_raw_fd()),
                lock.file.as_raw_fd(),
            )?;
            drop(cgroup_procs);
            let pid = child.id() as i32;
            let pidfd = match pidfd_open(
                Pid::from_raw(pid).expect("a child has a pid"),
                PidfdFlags::empty(),
            ) {
                Ok(pidfd) => pidfd,
                Err(err) => {
                    child::end_unrecorded(child, &containment);
                    return Err(Failure::new(format!(
                        "cannot watch `{}` (pidfd: {err}); it was ended",
                        command[0]
                    )));
                }
            };
            let supervisor = procfs::stat(std::process::id() as i32)
                .map(|stat| crate::pidfile::SupervisorId {
                    pid: stat.pid,
                    start_time: stat.start_time,
                })
                .map_err(|err| Failure::new(format!("cannot read this process's /proc: {err}")));
            let recorded = supervisor.and_then(|supervisor| {
                let stat = procfs::stat(pid)
                    .map_err(|err| Failure::new(format!("cannot read /proc/{pid}: {err}")))?;
                let record = Record {
                    name: name.to_owned(),
                    pid,
                    pgid: pid,
                    start_time: stat.start_time,
                    boot_id: procfs::boot_id()
                        .map_err(|err| Failure::new(format!("cannot read the boot id: {err}")))?,
                    command: command.to_vec(),
                    started_at: crate::commands::now_secs(),
                    marker,
                    uid: Some(crate::ownership::current_uid()),
                    supervisor: Some(supervisor),
                };
                record::write(&pid_path, &record)?;
                Ok(record)
            });
            let record = match recorded {
                Ok(record) => record,
                Err(failure) => {
                    child::end_unrecorded(child, &containment);
                    return Err(Failure::new(format!(
                        "{}; `{name}` was ended, not left running unrecorded",
                        failure.message()
                    )));
                }
            };
            Ok((output, child, pid, pidfd, record))
        })();
        let (output, child, pid, pidfd, record) = match spawned {
            Ok(spawned) => spawned,
            Err(failure) => {
                let _ = state.file(&socket_name(name)).unlink();
                if let Containment::Cgroup(leaf) = &containment {
                    leaf.remove();
                }
                lock_log(&log).note(&format!("`{name}` did not start: {}", failure.message()));
                return Err(failure);
            }
        };
        control.set(Phase::Starting, pid);
        lock_log(&log).note(&format!(
            "started `{name}` (pid {pid}, supervisor {}): {}; contained by {}",
            std::process::id(),
            command.join(" "),
            containment.describe()
        ));
        let pump_done = pump(File::from(output), log.clone());
        Ok(Self {
            name: name.to_owned(),
            child,
            pidfd,
            record,
            pid_path,
            state,
            containment,
            log,
            pump_done,
            control,
            lock,
        })
    }

    /// Watches the service until it ends or is stopped; then ends what is
    /// left of it, cleans up, answers and returns the supervisor's exit.
    fn supervise(
        mut self,
        project: &Project,
        mut report: Reporter,
        signals: &SignalFd,
    ) -> ExitCode {
        let pid = self.record.pid;
        let grace = project
            .start_grace()
            .unwrap_or(crate::project::DEFAULT_START_GRACE);
        let grace_ends = Instant::now() + grace;
        let mut started = false;
        let ending = loop {
            let timeout = (!started).then(|| {
                let left = grace_ends.saturating_duration_since(Instant::now());
                rustix::time::Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: i64::from(left.subsec_nanos()),
                }
            });
            let mut fds = [
                PollFd::new(&self.pidfd, PollFlags::IN),
                PollFd::from_borrowed_fd(self.control.wake_fd(), PollFlags::IN),
                PollFd::new(signals, PollFlags::IN),
            ];
            let _ = poll(&mut fds, timeout.as_ref());
            let [exited, woken, signalled] = fds.map(|fd| !fd.revents().is_empty());
            if exited {
                break Ending::Exited;
            }
            if woken && let Some(timeout) = self.control.stop_asked() {
                break Ending::Stop(timeout);
            }
            if signalled && let Ok(Some(info)) = signals.read_signal() {
                lock_log(&self.log).note(&format!(
                    "the supervisor got signal {}: stopping `{}`",
                    info.ssi_signo, self.name
                ));
                break Ending::Stop(
                    project
                        .stop_timeout(None)
                        .unwrap_or(crate::project::DEFAULT_STOP_TIMEOUT),
                );
            }
            if !started && Instant::now() >= grace_ends {
                started = true;
                self.control.set(Phase::Running, pid);
                report.send(&Report::Started {
                    pid,
                    containment: self.containment.describe(),
                });
            }
        };
        self.control.set(Phase::Stopping, pid);
        let began = Instant::now();
        let (timeout, by_itself) = match ending {
            Ending::Stop(timeout) => (timeout, false),
            Ending::Exited => (
                project
                    .stop_timeout(None)
                    .unwrap_or(crate::project::DEFAULT_STOP_TIMEOUT),
                true,
            ),
        };
        // The main process (pinned: it is our unreaped child, ended or
        // not) and whatever is left of its run.
        let stop_signal = project
            .stop_signal()
            .unwrap_or(rustix::process::Signal::TERM);
        let leaf = match &self.containment {
            Containment::Cgroup(leaf) => Some(leaf.clone()),
            Containment::GroupAndMarker(_) => None,
        };
        let claim = Claim::of(&self.record, leaf.as_ref());
        let targets: Vec<Pinned> = Pinned::open(pid).into_iter().collect();
        let stopped = stop::end_run(
            leaf.as_ref(),
            targets,
            &self.record,
            claim,
            stop_signal,
            timeout,
        );
        let status = self.child.wait();
        let ended = status
            .as_ref()
            .map_or_else(|err| format!("unknown ({err})"), describe);
        let killed = match &stopped {
            Ok(killed) => *killed,
            Err(_) => 0,
        };
        // Whatever the service wrote before it ended, then the last line.
        let _ = self.pump_done.recv_timeout(PUMP_WAIT);
        {
            let mut log = lock_log(&self.log);
            match (&stopped, by_itself) {
                (Err(survivors), _) => log.note(&format!(
                    "`{}` (pid {pid}) ended ({ended}), but processes {survivors:?} of its run survived SIGKILL; the PID file is kept",
                    self.name
                )),
                (Ok(_), true) => log.note(&format!(
                    "`{}` (pid {pid}) ended by itself: {ended}",
                    self.name
                )),
                (Ok(killed), false) => log.note(&format!(
                    "stopped `{}` (pid {pid}) in {:.0?}: {ended}{}",
                    self.name,
                    began.elapsed(),
                    if *killed > 0 {
                        format!("; {killed} process(es) needed SIGKILL")
                    } else {
                        String::new()
                    }
                )),
            }
        }
        // In this order: the socket and the record go while the lock is
        // held, so a `start` that wins the lock next finds neither.
        let _ = self.state.file(&socket_name(&self.name)).unlink();
        if stopped.is_ok() {
            let _ = record::remove_if_still(&self.pid_path, &self.record);
        }
        drop(self.lock);
        if !started {
            let message = if by_itself {
                format!(
                    "`{}` ended at once ({ended}); see {}",
                    self.record.command.join(" "),
                    record::log_path(&self.state, &self.name).path().display()
                )
            } else {
                format!("`{}` was stopped while it started", self.name)
            };
            report.send(&Report::Failed {
                message,
                code: Exit::Failure.code(),
            });
        }
        self.control.finish(StopReply {
            pid,
            elapsed_ms: began.elapsed().as_millis() as u64,
            killed,
            ended,
            by_itself,
        });
        ExitCode::SUCCESS
    }
}

/// How long the supervisor waits, once the run has ended, for the rest of
/// its output (a process outside the cgroup may still hold the pipe).
const PUMP_WAIT: Duration = Duration::from_secs(5);

pub(super) fn lock_log(log: &Mutex<RotatingLog>) -> std::sync::MutexGuard<'_, RotatingLog> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `exit code 0`, `signal 9`.
fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

/// Copies the service's output into the log on a thread of its own, so
/// that the service never waits on the supervisor's other work; the
/// receiver hears when the pipe has been read to its end (every process
/// holding its write end has ended).
fn pump(mut output: File, log: Arc<Mutex<RotatingLog>>) -> std::sync::mpsc::Receiver<()> {
    let (done, done_rx) = std::sync::mpsc::channel();
    let log_for_note = log.clone();
    let spawned = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match output.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(read) => lock_log(&log).write(&buffer[..read]),
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
