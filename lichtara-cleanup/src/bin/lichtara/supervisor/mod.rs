//! The per-service supervisor. `lichtara start` runs this same binary in an
//! internal mode (`lichtara __supervise`), detached in a session of its
//! own, as s6-supervise and runit's runsv supervise theirs; it owns the
//! service for the service's whole life:
//!
//! 1. it holds the name's lock, which `start` took and handed down (a
//!    second start of the name is refused while it lives; the service
//!    inherits the lock too, so a service whose supervisor was killed
//!    still holds it), and clears a stale record away (`claim`);
//! 2. binds the declared listeners (`listeners`: a port conflict is found,
//!    and its holder named, before anything starts) and holds them;
//! 3. spawns the service (`generation`, `child`) in a cgroup leaf of its
//!    own below the service's (`containment`) or, without one, its own
//!    process group, with the run's marker, the listeners by socket
//!    activation, a `NOTIFY_SOCKET` (`notify`) when it is to say
//!    `READY=1`, its stdout and stderr a pipe that the supervisor reads;
//! 4. writes the record (the PID file, naming itself as supervisor),
//!    reports to `start` once the service is ready (`ready`: its start
//!    grace passed, `READY=1`, or its port answers) or why it is not, and
//!    answers `status`, `stop`, `reload` and `restart` on its socket
//!    (`control`);
//! 5. writes what the service prints into the capped, rotated log (`log`);
//! 6. reloads: starts the next generation beside the running one on the
//!    same listeners, and once it is ready names it in the record and
//!    stops the old one (on a thread of its own, so that the loop goes on
//!    watching the new one and a stop is never kept waiting); a
//!    generation that ends or is not ready in time is ended, and the old
//!    one keeps serving;
//! 7. when the service's main process ends by itself and its restart
//!    policy says so (`restart`), ends the rest of that generation, waits
//!    the backoff and starts the next on the same listeners (connections
//!    wait in their backlog meanwhile); past the policy's limit it gives
//!    up, and records the service as failed (`<name>.failed`);
//!    a health check (`health`) that fails often enough in a row
//!    restarts it too, through the stop path;
//! 8. when the service's main process ends otherwise, or a stop is asked for, ends
//!    whatever is left of the run (the stop signal, the timeout, SIGKILL,
//!    the cgroup removed), removes the record it wrote, writes the last
//!    log line, answers, and exits.
//!
//! Its own process (`setup`) keeps only what `start` handed down, and
//! takes SIGTERM and SIGINT as a stop, SIGHUP as a reload. Signals go only
//! to its own unreaped children (whose PIDs cannot be recycled) and to
//! processes that pass the ownership proofs; never to a group.

mod child;
mod claim;
mod control;
mod generation;
mod health;
pub(crate) mod log;
mod notify;
mod setup;

pub(crate) use self::claim::locked;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitCode, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signalfd::SignalFd;
use rustix::event::{PollFd, PollFlags, poll};

use self::control::{Answer, Ask, Control, Phase};
use self::generation::{Generation, Spawner};
use self::log::RotatingLog;
use self::notify::Notify;
use crate::commands::stop::{self, Reach};
use crate::config::{Ready, RestartPolicy, RestartWhen, ServiceConfig};
use crate::containment::{self, Containment};
use crate::exit::Exit;
use crate::listeners::{Declared, Held};
use crate::ownership::Claim;
use crate::project::Project;
use crate::protocol::{ReloadReply, Report, SUPERVISOR_VAR, StopReply, socket_name};
use crate::record::{self, Lock, Record};
use crate::state::{StateDir, StateFile};
use crate::terminate::Pinned;
use crate::{Failure, procfs};

/// What `start` decided for the service, passed on its command line.
pub(crate) struct Options<'a> {
    pub(crate) listen: &'a [String],
    pub(crate) ready: &'a str,
    pub(crate) ready_timeout: Duration,
}

/// The supervisor's entry: `report_fd` is the pipe `start` reads,
/// `lock_fd` the name's lock, which `start` took.
pub(crate) fn run(
    project: &Project,
    name: &str,
    report_fd: i32,
    lock_fd: i32,
    command: &[String],
    options: &Options<'_>,
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
    // SIGTERM and SIGINT ask for a stop, as `lichtara stop` does, SIGHUP
    // for a reload: blocked in every thread (none has started yet) and
    // read from a signalfd by the main loop. The service starts with an
    // empty mask.
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
    match Service::start(project, name, command, marker, lock, options, &mut report) {
        Ok(service) => service.supervise(report, &signals),
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
struct Service<'p> {
    project: &'p Project,
    name: String,
    command: Vec<String>,
    marker: String,
    /// The record as last written: it names the generation serving.
    record: Record,
    pid_path: StateFile,
    state: StateDir,
    /// The service's cgroup (each generation has one below it).
    containment: Containment,
    log: Arc<Mutex<RotatingLog>>,
    control: Control,
    lock: Lock,
    held: Vec<Held>,
    notify: Option<Notify>,
    ready: Ready,
    ready_timeout: Duration,
    grace: Duration,
    stop_signal: rustix::process::Signal,
    stop_timeout: Duration,
    /// The generation that serves (none while the first one starts, and
    /// while a restart's next one does).
    current: Option<Generation>,
    /// A generation not yet ready, and why it was started.
    pending: Option<Pending>,
    /// The old generation of a reload whose main process ended by itself
    /// meanwhile: what is left of it is ended with the reload's outcome.
    leftover: Option<Generation>,
    /// An old generation being ended.
    retiring: Option<Retiring>,
    /// The number the next generation gets.
    next: u32,
    /// Its settings.
    config: ServiceConfig,
    policy: RestartPolicy,
    /// The policy's restarts, by when they were decided, within its window.
    restarts: VecDeque<Instant>,
    /// Crashes in a row: the backoff's exponent.
    in_a_row: u32,
    /// A restart after a crash waits until then (the crashed generation's
    /// rest has ended).
    backoff: Option<Instant>,
    /// Restarts made by the policy since the supervisor started.
    total_restarts: u32,
    /// The health check's thread, if the service has a check.
    health: Option<health::Checker>,
    /// The watchdog's interval, and the serving generation's last
    /// `WATCHDOG=1` (from its readiness on), and whether one came yet.
    watchdog: Option<Duration>,
    pinged: Option<(Instant, bool)>,
}

/// A generation started and not yet ready.
struct Pending {
    generation: Generation,
    purpose: Purpose,
    /// When it was asked for (the reload's request).
    asked: Instant,
    deadline: Instant,
    grace_ends: Instant,
    next_probe: Instant,
    /// It sent `READY=1`.
    notified: bool,
}

/// Why a pending generation was started.
enum Purpose {
    /// The service's first start: `start` waits for it.
    Start,
    /// Beside the serving one, which is stopped once this one is ready.
    Reload(Option<Answer>),
    /// After the serving one ended by itself, by the restart policy.
    Recover,
    /// After the serving one was stopped.
    Restart {
        answer: Option<Answer>,
        old_pid: i32,
        old_ended: String,
        killed: usize,
        old_gone: Duration,
    },
}

/// An old generation being ended on a thread of its own, and what
/// follows once it has.
struct Retiring {
    thread: std::thread::JoinHandle<generation::Ended>,
    /// Readable (hung up) once the thread is done.
    done: std::os::fd::OwnedFd,
    then: Then,
    number: u32,
    pid: i32,
}

/// What follows the end of an old generation.
enum Then {
    /// A reload: answered.
    Reloaded {
        answer: Option<Answer>,
        ready_in: Duration,
        asked: Instant,
    },
    /// A restart: the next generation starts.
    Restart {
        answer: Option<Answer>,
        command: Option<Vec<String>>,
        asked: Instant,
    },
    /// A crashed generation's rest has ended: the next starts after
    /// `delay`.
    Recover { delay: Duration },
}

impl Then {
    fn answer(self) -> Option<Answer> {
        match self {
            Self::Reloaded { answer, .. } | Self::Restart { answer, .. } => answer,
            Self::Recover { .. } => None,
        }
    }
}

/// Why the supervision ended.
enum Ending {
    /// The serving generation ended by itself.
    Exited,
    /// A stop was asked for.
    Stop(Duration),
    /// The first generation never became ready, or a restart's did not:
    /// nothing serves. The answer, if a client waits, is sent once all is
    /// cleaned up.
    Failed(String, Option<Answer>),
}

/// Why a pending generation will not serve.
enum Unready {
    /// Its main process ended.
    Exited,
    /// It did not become ready in time, or could not be recorded.
    Not(String),
}

/// How often a `port` readiness is tried.
const PROBE_EVERY: Duration = Duration::from_millis(100);

impl<'p> Service<'p> {
    fn start(
        project: &'p Project,
        name: &str,
        command: &[String],
        marker: String,
        lock: Lock,
        options: &Options<'_>,
        report: &mut Reporter,
    ) -> Result<Self, Failure> {
        let state = project.state_dir()?;
        let pid_path = record::pid_path(&state, name);
        claim::clear_the_way(project, name, &pid_path, report)?;
        let declared = Declared::parse_all(options.listen)?;
        let ready = Ready::parse(options.ready).map_err(Failure::new)?;
        if let Ready::Port(addr) = ready
            && declared
                .iter()
                .any(|listener| listener.address == crate::listeners::Address::Tcp(addr))
        {
            return Err(Failure::new(format!(
                "ready = port {addr} is a declared listener, which the supervisor holds: it accepts connections before the service does and proves nothing; use ready = \"notify\""
            )));
        }
        let config = project.service(name);
        let policy = config.restart()?;
        let health = config.health()?;
        let watchdog = config.watchdog()?;
        let (log_max, log_keep) = config.log_limits()?;
        let log = Arc::new(Mutex::new(RotatingLog::open(
            &state, name, log_max, log_keep,
        )?));
        // Bound before anything starts: a conflict names its holder.
        let held = Held::bind_all(project, &declared)?;
        let health = health
            .map(|health| {
                let place = health::Place {
                    dir: project.dir.clone(),
                    env: config.env().clone(),
                };
                health::Checker::start(health, place, log.clone())
            })
            .transpose()?;
        let notify = match (ready, watchdog) {
            (Ready::Notify, _) | (_, Some(_)) => Some(Notify::bind(&project.id, name)?),
            _ => None,
        };
        let containment = Containment::of(project, name, true);
        if let Containment::Cgroup(leaf) = &containment
            && leaf.populated()
        {
            return Err(containment::still_populated(leaf, name));
        }
        // Listening before the service exists: a stop may come at once.
        let control = Control::listen(&state, name, log.clone(), containment.describe())
            .inspect_err(|_| {
                if let Containment::Cgroup(leaf) = &containment {
                    leaf.remove();
                }
            })?;
        control.describe(
            1,
            declared.iter().map(Declared::pair).collect(),
            ready.arg(),
        );
        let stop_timeout = config
            .stop_timeout(None)
            .unwrap_or(crate::config::DEFAULT_STOP_TIMEOUT);
        control.timeouts(options.ready_timeout, stop_timeout);
        control.restart_policy(policy.when.word());
        let mut service = Self {
            project,
            name: name.to_owned(),
            command: command.to_vec(),
            marker: marker.clone(),
            record: Record {
                name: name.to_owned(),
                pid: 0,
                pgid: 0,
                start_time: 0,
                boot_id: String::new(),
                command: command.to_vec(),
                started_at: crate::commands::now_secs(),
                marker,
                uid: Some(crate::ownership::current_uid()),
                supervisor: None,
            },
            pid_path,
            state,
            containment,
            log,
            control,
            lock,
            held,
            notify,
            ready,
            ready_timeout: options.ready_timeout,
            grace: config
                .start_grace()
                .unwrap_or(crate::config::DEFAULT_START_GRACE),
            stop_signal: config
                .stop_signal()
                .unwrap_or(rustix::process::Signal::TERM),
            stop_timeout,
            current: None,
            pending: None,
            leftover: None,
            retiring: None,
            next: 1,
            config,
            policy,
            restarts: VecDeque::new(),
            in_a_row: 0,
            backoff: None,
            total_restarts: 0,
            health,
            watchdog,
            pinged: None,
        };
        // From here on a failure leaves nothing behind: the socket, the
        // leaf (the spawn undoes the rest itself), and a line in the log.
        let first = service.spawn(None).and_then(|generation| {
            let recorded = service.recorded(&generation);
            match recorded {
                Ok(record) => {
                    service.record = record;
                    Ok(generation)
                }
                Err(failure) => {
                    let _ = generation.end(
                        &service.record,
                        rustix::process::Signal::KILL,
                        Duration::ZERO,
                    );
                    Err(Failure::new(format!(
                        "{}; `{name}` was ended, not left running unrecorded",
                        failure.message()
                    )))
                }
            }
        });
        let generation = match first {
            Ok(generation) => generation,
            Err(failure) => {
                service.release();
                lock_log(&service.log)
                    .note(&format!("`{name}` did not start: {}", failure.message()));
                return Err(failure);
            }
        };
        let pid = generation.pid;
        service.control.set(Phase::Starting, pid);
        lock_log(&service.log).note(&format!(
            "started `{name}` (pid {pid}, supervisor {}): {}; contained by {}{}",
            std::process::id(),
            command.join(" "),
            service.containment.describe(),
            service.listening()
        ));
        service.pending = Some(service.pending(generation, Purpose::Start, Instant::now()));
        Ok(service)
    }

    /// `; listening on http=127.0.0.1:8000`, or nothing.
    fn listening(&self) -> String {
        if self.held.is_empty() {
            return String::new();
        }
        let pairs: Vec<String> = self.held.iter().map(|held| held.declared.pair()).collect();
        format!("; holding {}", pairs.join(", "))
    }

    /// Starts the next generation, running `command` (else the current
    /// one's).
    fn spawn(&mut self, command: Option<&[String]>) -> Result<Generation, Failure> {
        let number = self.next;
        self.next += 1;
        let command = command.unwrap_or(&self.command).to_vec();
        // A listener a generation shut down (shutdown(2) on its copy) is
        // dead for every generation after: bound again.
        for held in &mut self.held {
            if held.revive(self.project)? {
                lock_log(&self.log).note(&format!(
                    "the held listener `{}` no longer listened (shut down by the service?): bound it again",
                    held.declared.pair()
                ));
            }
        }
        Spawner {
            project: self.project,
            marker: &self.marker,
            containment: &self.containment,
            lock_fd: self.lock.file.as_raw_fd(),
            held: &self.held,
            notify: self.notify.as_ref().map(|notify| notify.address.as_str()),
            log: &self.log,
            env: self.config.env(),
            watchdog: self.watchdog,
        }
        .spawn(number, &command)
    }

    fn pending(&self, generation: Generation, purpose: Purpose, asked: Instant) -> Pending {
        let began = generation.began;
        Pending {
            generation,
            purpose,
            asked,
            deadline: began + self.ready_timeout,
            grace_ends: began + self.grace,
            next_probe: began,
            notified: false,
        }
    }

    /// Writes the record naming `generation` (and this supervisor).
    fn recorded(&self, generation: &Generation) -> Result<Record, Failure> {
        let supervisor = procfs::stat(std::process::id() as i32)
            .map(|stat| crate::pidfile::SupervisorId {
                pid: stat.pid,
                start_time: stat.start_time,
            })
            .map_err(|err| Failure::new(format!("cannot read this process's /proc: {err}")))?;
        let boot_id = procfs::boot_id()
            .map_err(|err| Failure::new(format!("cannot read the boot id: {err}")))?;
        let record = Record {
            boot_id,
            supervisor: Some(supervisor),
            ..generation.record(&self.record)
        };
        record::write(&self.pid_path, &record)?;
        Ok(record)
    }

    /// What a failed start leaves: nothing (the socket, the held
    /// listeners' files, the cgroup).
    fn release(&self) {
        let _ = self.state.file(&socket_name(&self.name)).unlink();
        for held in &self.held {
            held.remove_socket_file();
        }
        if let Containment::Cgroup(leaf) = &self.containment {
            leaf.remove();
        }
    }

    fn note(&self, text: &str) {
        lock_log(&self.log).note(text);
    }

    /// Watches the service until it ends or is stopped, carrying out
    /// reloads and restarts meanwhile; then ends what is left of it,
    /// cleans up, answers and returns the supervisor's exit.
    fn supervise(mut self, mut report: Reporter, signals: &SignalFd) -> ExitCode {
        let ending = loop {
            if let Some(ending) = self.judge_pending(&mut report) {
                break ending;
            }
            if self.backoff.is_some_and(|until| Instant::now() >= until)
                && let Some(ending) = self.recover()
            {
                break ending;
            }
            let pending_next = self.pending.as_ref().map(|pending| {
                let mut next = pending.deadline;
                match self.ready {
                    Ready::None => next = next.min(pending.grace_ends),
                    Ready::Port(_) => next = next.min(pending.next_probe),
                    Ready::Notify => {}
                }
                next
            });
            let watchdog_due = self
                .watchdog
                .zip(self.pinged)
                .map(|(interval, (at, _))| at + interval);
            let timeout = pending_next
                .into_iter()
                .chain(self.backoff)
                .chain(watchdog_due)
                .min()
                .map(|next| {
                    let left = next.saturating_duration_since(Instant::now());
                    rustix::time::Timespec {
                        tv_sec: left.as_secs() as i64,
                        tv_nsec: i64::from(left.subsec_nanos()),
                    }
                });
            let (current_exited, pending_exited, woken, signalled, notified, retired, unhealthy) = {
                let mut fds = vec![
                    PollFd::from_borrowed_fd(self.control.wake_fd(), PollFlags::IN),
                    PollFd::new(signals, PollFlags::IN),
                ];
                let notify_at = self.notify.as_ref().map(|notify| {
                    fds.push(PollFd::from_borrowed_fd(notify.fd(), PollFlags::IN));
                    fds.len() - 1
                });
                let current_at = self.current.as_ref().map(|current| {
                    fds.push(PollFd::new(&current.pidfd, PollFlags::IN));
                    fds.len() - 1
                });
                let pending_at = self.pending.as_ref().map(|pending| {
                    fds.push(PollFd::new(&pending.generation.pidfd, PollFlags::IN));
                    fds.len() - 1
                });
                let retired_at = self.retiring.as_ref().map(|retiring| {
                    fds.push(PollFd::new(&retiring.done, PollFlags::IN));
                    fds.len() - 1
                });
                let health_at = self.health.as_ref().map(|health| {
                    fds.push(PollFd::from_borrowed_fd(health.wake_fd(), PollFlags::IN));
                    fds.len() - 1
                });
                let _ = poll(&mut fds, timeout.as_ref());
                let ready = |at: Option<usize>| at.is_some_and(|at| !fds[at].revents().is_empty());
                (
                    ready(current_at),
                    ready(pending_at),
                    ready(Some(0)),
                    ready(Some(1)),
                    ready(notify_at),
                    ready(retired_at),
                    ready(health_at),
                )
            };
            if unhealthy && let Some(ending) = self.unhealthy() {
                break ending;
            }
            if watchdog_due.is_some_and(|due| Instant::now() >= due) {
                // A ping that waits is read before the service is judged.
                self.take_notifications();
                if let Some(ending) = self.watchdog_missed() {
                    break ending;
                }
            }
            if notified {
                self.take_notifications();
            }
            if retired && let Some(retiring) = self.retiring.take() {
                let ended = retiring
                    .thread
                    .join()
                    .unwrap_or_else(|_| generation::Ended {
                        how: "unknown (its thread panicked)".into(),
                        stopped: Ok(0),
                        tail: String::new(),
                    });
                if let Some(ending) =
                    self.retired(retiring.number, retiring.pid, ended, retiring.then)
                {
                    break ending;
                }
            }
            if pending_exited && let Some(pending) = &mut self.pending {
                // Judged (and ended) at the top of the loop.
                pending.deadline = Instant::now();
            }
            if current_exited {
                let reloading = matches!(
                    self.pending.as_ref().map(|pending| &pending.purpose),
                    Some(Purpose::Reload(_))
                );
                if !reloading {
                    if let Some(ending) = self.ended_by_itself() {
                        break ending;
                    }
                    continue;
                }
                // The new generation is on its way: it serves if it
                // becomes ready; if not, nothing does. What is left of the
                // old one is ended then (not now: its processes may take
                // their stop timeout, and the new one is to be watched).
                let current = self.current.take().expect("it exited");
                self.note(&format!(
                    "generation {} (pid {}) of `{}` ended by itself while the next one starts",
                    current.number, current.pid, self.name
                ));
                self.leftover = Some(current);
            }
            if woken {
                if let Some(timeout) = self.control.stop_asked() {
                    break Ending::Stop(timeout);
                }
                let mut ended = None;
                for (ask, answer) in self.control.asked() {
                    if ended.is_some() {
                        let _ = answer.send(Err("the service is stopping".into()));
                        continue;
                    }
                    ended = self.take_ask(ask, Some(answer));
                }
                if let Some(ending) = ended {
                    break ending;
                }
            }
            if signalled && let Ok(Some(info)) = signals.read_signal() {
                if info.ssi_signo == nix::libc::SIGHUP as u32 {
                    self.note(&format!(
                        "the supervisor got SIGHUP: reloading `{}`",
                        self.name
                    ));
                    if let Some(ending) = self.take_ask(Ask::Reload(None), None) {
                        break ending;
                    }
                } else {
                    self.note(&format!(
                        "the supervisor got signal {}: stopping `{}`",
                        info.ssi_signo, self.name
                    ));
                    break Ending::Stop(self.stop_timeout);
                }
            }
        };
        self.finish(ending, report)
    }

    /// The serving generation's main process ended by itself: supervision
    /// ends with it, unless the restart policy starts the next one (once
    /// the rest of the crashed one has ended, and after the backoff).
    fn ended_by_itself(&mut self) -> Option<Ending> {
        self.pinged = None;
        let current = self.current.as_ref()?;
        if let Some(health) = &self.health {
            health.pause();
        }
        let peeked = peek_exit(&current.pidfd);
        let failed = match peeked {
            Some(HowEnded::Code(code)) => code != 0,
            Some(HowEnded::Signal(signal)) => signal != self.stop_signal.as_raw(),
            None => true,
        };
        let restart = match self.policy.when {
            RestartWhen::No => false,
            RestartWhen::OnFailure => failed,
            RestartWhen::Always => true,
        };
        if !restart {
            return Some(Ending::Exited);
        }
        let current = self.current.take().expect("checked");
        let how = peeked.map_or_else(|| "unknown".to_owned(), |exit| exit.describe());
        let tail = current.last_lines();
        let ran = current.began.elapsed();
        let (number, pid) = (current.number, current.pid);
        let delay = match self.crashed(ran, &how, &tail) {
            Ok(delay) => delay,
            Err(ending) => {
                self.current = Some(current);
                return Some(ending);
            }
        };
        self.note(&format!(
            "`{}` (generation {number}, pid {pid}) ended by itself ({how}) after {}: restarting it in {} (restart {} of at most {} within {}; restart = \"{}\")",
            self.name,
            crate::commands::short_duration(ran),
            crate::commands::millis(delay),
            self.restarts.len(),
            self.policy.limit,
            humantime::format_duration(self.policy.window),
            self.policy.when.word(),
        ));
        self.control.set(Phase::Restarting, pid);
        self.control.restarted(self.restarts_made(), Some(how));
        let then = Then::Recover { delay };
        if self.retiring.is_some() {
            // A reload's old generation is still being ended: this one is
            // ended here (its main process has, its rest gets the stop
            // signal and timeout).
            let ended = current.end(&self.record, self.stop_signal, self.stop_timeout);
            return self.retired(number, pid, ended, then);
        }
        let timeout = self.stop_timeout;
        self.retire(current, timeout, then)
    }

    /// Counts a crash against the restart policy: the delay before the next
    /// start, or (past `restart_limit` within `restart_window`) the end of
    /// supervision, the service marked failed.
    fn crashed(&mut self, ran: Duration, how: &str, tail: &str) -> Result<Duration, Ending> {
        let now = Instant::now();
        // A generation that ran for a whole window was healthy: its crash
        // is the first in a row again.
        if ran >= self.policy.window {
            self.in_a_row = 0;
        }
        while self
            .restarts
            .front()
            .is_some_and(|at| now.duration_since(*at) >= self.policy.window)
        {
            self.restarts.pop_front();
        }
        if self.restarts.len() >= self.policy.limit as usize {
            let why = format!(
                "`{}` ended by itself ({how}) after {} restart(s) within {} (restart_limit = {}): it is failed, and is not restarted until `lichtara start`",
                self.name,
                self.restarts.len(),
                humantime::format_duration(self.policy.window),
                self.policy.limit
            );
            self.note(&why);
            let failed = record::Failed {
                at: crate::commands::now_secs(),
                ended: how.to_owned(),
                restarts: self.restarts_made(),
                why: why.clone(),
                tail: tail.to_owned(),
            };
            if let Err(failure) = record::write_failed(
                &record::failed_path(&self.state, &self.name),
                &self.name,
                &failed,
            ) {
                self.note(failure.message());
            }
            return Err(Ending::Failed(why, None));
        }
        let delay = self.policy.delay_for(self.in_a_row);
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.restarts.push_back(now);
        self.total_restarts = self.total_restarts.saturating_add(1);
        Ok(delay)
    }

    /// The health check failed often enough in a row: the generation it
    /// checked, if it still serves alone, is restarted through the normal
    /// stop path (its stop signal, timeout, escalation), the listeners held.
    fn unhealthy(&mut self) -> Option<Ending> {
        let (number, why) = self.health.as_ref()?.failed()?;
        let serving = self.current.as_ref().map(|current| current.number);
        if serving != Some(number) || self.pending.is_some() || self.retiring.is_some() {
            // Replaced meanwhile, or a change is under way: its readiness
            // starts the checks again.
            return None;
        }
        self.note(&format!("restarting `{}`: {why}", self.name));
        self.total_restarts = self.total_restarts.saturating_add(1);
        self.control
            .restarted(self.restarts_made(), Some(format!("unhealthy: {why}")));
        let timeout = self.stop_timeout;
        self.take_ask(Ask::Restart(timeout, None), None)
    }

    /// The serving generation sent no `WATCHDOG=1` within the watchdog's
    /// interval: restarted through the stop path, as a failed health
    /// check is.
    fn watchdog_missed(&mut self) -> Option<Ending> {
        let (interval, (at, _)) = self.watchdog.zip(self.pinged)?;
        if at.elapsed() < interval {
            return None;
        }
        self.pinged = None;
        if self.current.is_none() || self.pending.is_some() || self.retiring.is_some() {
            return None;
        }
        let why = format!(
            "it sent no WATCHDOG=1 for {}",
            humantime::format_duration(interval)
        );
        self.note(&format!("restarting `{}`: {why}", self.name));
        self.total_restarts = self.total_restarts.saturating_add(1);
        self.control
            .restarted(self.restarts_made(), Some(format!("watchdog: {why}")));
        let timeout = self.stop_timeout;
        self.take_ask(Ask::Restart(timeout, None), None)
    }

    /// Restarts made by the policy since the supervisor started.
    fn restarts_made(&self) -> u32 {
        self.total_restarts
    }

    /// The backoff has passed: the next generation starts.
    fn recover(&mut self) -> Option<Ending> {
        self.backoff = None;
        match self.spawn(None) {
            Ok(generation) => {
                self.note(&format!(
                    "restarting `{}`: started generation {} (pid {})",
                    self.name, generation.number, generation.pid
                ));
                self.control.set(Phase::Restarting, generation.pid);
                self.pending = Some(self.pending(generation, Purpose::Recover, Instant::now()));
                None
            }
            Err(failure) => {
                let how = format!("did not start: {}", failure.message());
                self.note(&format!("`{}` {how}", self.name));
                self.schedule(Duration::ZERO, &how, "")
            }
        }
    }

    /// Counts one more crash and waits for the next try, or gives up.
    fn schedule(&mut self, ran: Duration, how: &str, tail: &str) -> Option<Ending> {
        match self.crashed(ran, how, tail) {
            Ok(delay) => {
                self.note(&format!(
                    "restarting `{}` in {} (restart {} of at most {} within {})",
                    self.name,
                    crate::commands::millis(delay),
                    self.restarts.len(),
                    self.policy.limit,
                    humantime::format_duration(self.policy.window)
                ));
                self.control
                    .restarted(self.restarts_made(), Some(how.to_owned()));
                self.backoff = Some(Instant::now() + delay);
                None
            }
            Err(ending) => Some(ending),
        }
    }

    /// Whether the pending generation is ready, failed, or still on its
    /// way; acts on the first two. Returns how supervision ends, if it
    /// does now.
    fn judge_pending(&mut self, report: &mut Reporter) -> Option<Ending> {
        self.pending.as_ref()?;
        // A READY=1 that waits is read before the deadline is judged.
        self.take_notifications();
        let pending = self.pending.as_mut()?;
        let now = Instant::now();
        if pending.generation.exited() {
            let pending = self.pending.take().expect("judged");
            return self.fail(pending, Unready::Exited);
        }
        let ready = match self.ready {
            Ready::None => now >= pending.grace_ends,
            Ready::Notify => pending.notified,
            Ready::Port(addr) if now >= pending.next_probe => {
                pending.next_probe = now + PROBE_EVERY;
                std::net::TcpStream::connect_timeout(&addr, PROBE_EVERY).is_ok()
            }
            Ready::Port(_) => false,
        };
        if ready {
            let pending = self.pending.take().expect("judged");
            return self.promote(pending, report);
        }
        if now >= pending.deadline {
            let pending = self.pending.take().expect("judged");
            let why = match self.ready {
                Ready::Notify => format!(
                    "did not send READY=1 within {}",
                    humantime::format_duration(self.ready_timeout)
                ),
                Ready::Port(addr) => format!(
                    "did not accept connections on {addr} within {}",
                    humantime::format_duration(self.ready_timeout)
                ),
                Ready::None => "was not ready".into(),
            };
            return self.fail(pending, Unready::Not(why));
        }
        None
    }

    /// Datagrams on the `NOTIFY_SOCKET`: a `READY=1` from a process of the
    /// pending generation makes it ready; anything else is ignored.
    fn take_notifications(&mut self) {
        let Some(notify) = &self.notify else { return };
        let me = crate::ownership::current_uid();
        for message in notify.receive() {
            let trusted = message.uid == me || message.uid == 0;
            if trusted
                && message.watchdog()
                && let Some((at, seen)) = &mut self.pinged
                && self
                    .current
                    .as_ref()
                    .is_some_and(|current| current.owns(message.pid))
            {
                *at = Instant::now();
                if !*seen {
                    *seen = true;
                    lock_log(&self.log).note(&format!(
                        "watchdog: the first WATCHDOG=1 of `{}` came (pid {})",
                        self.name, message.pid
                    ));
                }
            }
            let Some(pending) = &mut self.pending else {
                continue;
            };
            if (message.uid == me || message.uid == 0)
                && message.ready()
                && pending.generation.owns(message.pid)
            {
                pending.notified = true;
            }
        }
    }

    /// A reload or restart asked for (by a client, `answer`, or by SIGHUP).
    fn take_ask(&mut self, ask: Ask, answer: Option<Answer>) -> Option<Ending> {
        let refuse = |answer: Option<Answer>, why: String| {
            if let Some(answer) = answer {
                let _ = answer.send(Err(why));
            }
        };
        if self.pending.is_some() || self.retiring.is_some() {
            let what = match self.pending.as_ref().map(|pending| &pending.purpose) {
                Some(Purpose::Start) => "it is still starting",
                _ => "a reload or restart is already under way",
            };
            self.note(&format!("a reload of `{}` was refused: {what}", self.name));
            refuse(answer, format!("refused: {what}"));
            return None;
        }
        let Some((old_number, old)) = self.current.as_ref().map(|c| (c.number, c.pid)) else {
            refuse(
                answer,
                if self.backoff.is_some() {
                    "refused: it ended by itself and is being restarted".into()
                } else {
                    "nothing is running".into()
                },
            );
            return None;
        };
        let asked = Instant::now();
        if let (Ask::Reload(_), Ready::Port(addr)) = (&ask, self.ready) {
            refuse(
                answer,
                format!(
                    "refused: with ready = port {addr}, the old generation's answers on it would pass for the new one's; use ready = \"notify\" (or `lichtara restart`)"
                ),
            );
            return None;
        }
        match ask {
            Ask::Reload(command) => {
                match self.spawn(command.as_deref()) {
                    Ok(generation) => {
                        self.note(&format!(
                            "reloading `{}`: started generation {} (pid {}) beside generation {} (pid {old})",
                            self.name, generation.number, generation.pid, old_number
                        ));
                        self.control.set(Phase::Reloading, old);
                        self.pending =
                            Some(self.pending(generation, Purpose::Reload(answer), asked));
                    }
                    Err(failure) => {
                        let why = format!(
                            "the next generation did not start: {}; pid {old} keeps serving",
                            failure.message()
                        );
                        self.note(&why);
                        refuse(answer, why);
                    }
                }
                None
            }
            Ask::Restart(timeout, command) => {
                // The new command is checked before the old one is ended.
                if let Err(failure) = crate::listeners::check_program(
                    self.project,
                    self.config.env(),
                    command.as_deref().unwrap_or(&self.command),
                ) {
                    refuse(
                        answer,
                        format!("{}; pid {old} keeps running", failure.message()),
                    );
                    return None;
                }
                let old_generation = self.current.take().expect("checked");
                self.pinged = None;
                if let Some(health) = &self.health {
                    health.pause();
                }
                self.control.set(Phase::Reloading, old);
                self.note(&format!(
                    "restarting `{}`: stopping generation {old_number} (pid {old}); the listeners stay open",
                    self.name
                ));
                self.retire(
                    old_generation,
                    timeout,
                    Then::Restart {
                        answer,
                        command,
                        asked,
                    },
                )
            }
        }
    }

    /// Ends `old` on a thread of its own (its stop signal, `timeout`,
    /// SIGKILL, its cgroup removed); `then` follows in the main loop once
    /// it has ended.
    fn retire(&mut self, old: Generation, timeout: Duration, then: Then) -> Option<Ending> {
        let (number, pid) = (old.number, old.pid);
        let Ok((done, done_in)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
            // No pipe to hear its end by: ended here (the loop waits).
            let ended = old.end(&self.record, self.stop_signal, timeout);
            return self.retired(number, pid, ended, then);
        };
        let record = self.record.clone();
        let signal = self.stop_signal;
        // Taken back if the thread cannot start.
        let handed = Arc::new(Mutex::new(Some(old)));
        let taken = Arc::clone(&handed);
        let thread = std::thread::Builder::new()
            .name("retire".into())
            .spawn(move || {
                let old = taken
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take()
                    .expect("handed over before the spawn");
                let ended = old.end(&record, signal, timeout);
                // Its end, heard by the main loop's poll.
                drop(done_in);
                ended
            });
        match thread {
            Ok(thread) => {
                self.retiring = Some(Retiring {
                    thread,
                    done,
                    then,
                    number,
                    pid,
                });
                None
            }
            Err(_) => match handed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
            {
                Some(old) => {
                    let ended = old.end(&self.record, self.stop_signal, timeout);
                    self.retired(number, pid, ended, then)
                }
                None => None,
            },
        }
    }

    /// The old generation has ended: a reload is done (unless the old one
    /// shut the shared listeners down: then the new one restarts on fresh
    /// ones), a restart starts the next generation.
    fn retired(
        &mut self,
        number: u32,
        old_pid: i32,
        ended: generation::Ended,
        then: Then,
    ) -> Option<Ending> {
        let killed = match &ended.stopped {
            Ok(killed) => *killed,
            Err(survivors) => {
                self.note(&format!(
                    "processes {survivors:?} of generation {number} (pid {old_pid}) survived SIGKILL"
                ));
                survivors.len()
            }
        };
        match then {
            Then::Reloaded {
                answer,
                ready_in,
                asked,
            } => {
                let old_gone = asked.elapsed();
                let (number, pid) = self
                    .current
                    .as_ref()
                    .map_or((0, 0), |current| (current.number, current.pid));
                // shutdown(2) by the old generation ends the shared socket
                // for every holder: the new generation cannot accept.
                let dead: Vec<String> = self
                    .held
                    .iter()
                    .filter(|held| !held.listening())
                    .map(|held| held.declared.pair())
                    .collect();
                if !dead.is_empty() && self.current.is_some() {
                    self.note(&format!(
                        "the old generation (pid {old_pid}) shut the shared listener(s) {} down on its way out: restarting generation {number} (pid {pid}) on new ones",
                        dead.join(", ")
                    ));
                    let timeout = self.stop_timeout;
                    let current = self.current.take().expect("checked");
                    self.control.set(Phase::Reloading, pid);
                    return self.retire(
                        current,
                        timeout,
                        Then::Restart {
                            answer,
                            command: None,
                            asked,
                        },
                    );
                }
                self.control.set(Phase::Running, pid);
                self.note(&format!(
                    "reloaded `{}`: generation {number} (pid {pid}) serves; the old one (pid {old_pid}) ended ({}) {} after the request",
                    self.name,
                    ended.how,
                    crate::commands::millis(old_gone)
                ));
                if let Some(answer) = answer {
                    let _ = answer.send(Ok(replaced(
                        number, pid, old_pid, ready_in, old_gone, ended.how, killed,
                    )));
                }
                None
            }
            Then::Recover { delay } => {
                if let Err(survivors) = ended.stopped {
                    let why = format!(
                        "processes {survivors:?} of generation {number} (pid {old_pid}) survived SIGKILL; not restarting the service"
                    );
                    return Some(Ending::Failed(why, None));
                }
                self.backoff = Some(Instant::now() + delay);
                None
            }
            Then::Restart {
                answer,
                command,
                asked,
            } => {
                if let Err(survivors) = ended.stopped {
                    let why = format!(
                        "processes {survivors:?} of generation {number} (pid {old_pid}) survived SIGKILL; stopping the service"
                    );
                    return Some(Ending::Failed(why, answer));
                }
                let old_gone = asked.elapsed();
                match self.spawn(command.as_deref()) {
                    Ok(generation) => {
                        self.pending = Some(self.pending(
                            generation,
                            Purpose::Restart {
                                answer,
                                old_pid,
                                old_ended: ended.how,
                                killed,
                                old_gone,
                            },
                            asked,
                        ));
                        None
                    }
                    Err(failure) => {
                        let why =
                            format!("the next generation did not start: {}", failure.message());
                        Some(Ending::Failed(why, answer))
                    }
                }
            }
        }
    }

    /// The pending generation is ready: it serves from now on.
    fn promote(&mut self, pending: Pending, report: &mut Reporter) -> Option<Ending> {
        let Pending {
            generation,
            purpose,
            asked,
            ..
        } = pending;
        let ready_in = asked.elapsed();
        let pid = generation.pid;
        let number = generation.number;
        if !matches!(purpose, Purpose::Start) {
            match self.recorded(&generation) {
                Ok(record) => self.record = record,
                Err(failure) => {
                    // Unrecorded, it would be invisible to `stop` without
                    // this supervisor: ended instead.
                    let pending = self.pending(generation, purpose, asked);
                    return self.fail(
                        pending,
                        Unready::Not(format!("could not be recorded ({})", failure.message())),
                    );
                }
            }
        }
        let old = match purpose {
            Purpose::Reload(_) => self.current.take().or_else(|| self.leftover.take()),
            _ => None,
        };
        if generation.command != self.command {
            self.note(&format!(
                "`{}` runs `{}` from now on",
                self.name,
                generation.command.join(" ")
            ));
            self.command = generation.command.clone();
        }
        self.current = Some(generation);
        if let Some(health) = &self.health {
            health.watch(number);
        }
        // Its watchdog runs from its readiness.
        self.pinged = self.watchdog.map(|_| (Instant::now(), false));
        // A reload is under way until its old generation has ended.
        let phase = match purpose {
            Purpose::Reload(_) => Phase::Reloading,
            _ => Phase::Running,
        };
        self.control.set(phase, pid);
        self.control.describe(
            number,
            self.held.iter().map(|held| held.declared.pair()).collect(),
            self.ready.arg(),
        );
        match purpose {
            Purpose::Start => {
                self.note(&format!(
                    "`{}` (pid {pid}) is ready after {}",
                    self.name,
                    crate::commands::millis(ready_in)
                ));
                report.send(&Report::Started {
                    pid,
                    containment: self.containment.describe(),
                });
            }
            Purpose::Reload(answer) => {
                self.note(&format!(
                    "generation {number} (pid {pid}) of `{}` is ready after {}{}",
                    self.name,
                    crate::commands::millis(ready_in),
                    match &old {
                        Some(old) =>
                            format!("; stopping generation {} (pid {})", old.number, old.pid),
                        None => String::new(),
                    }
                ));
                match old {
                    // Ended on a thread of its own: the loop goes on
                    // watching the new one, and a stop can cut it short.
                    Some(old) => {
                        let timeout = self.stop_timeout;
                        return self.retire(
                            old,
                            timeout,
                            Then::Reloaded {
                                answer,
                                ready_in,
                                asked,
                            },
                        );
                    }
                    None => {
                        self.control.set(Phase::Running, pid);
                        self.note(&format!(
                            "reloaded `{}`: generation {number} (pid {pid}) serves; the old one had ended by itself",
                            self.name
                        ));
                        if let Some(answer) = answer {
                            let _ = answer.send(Ok(replaced(
                                number,
                                pid,
                                0,
                                ready_in,
                                asked.elapsed(),
                                "it had ended by itself".into(),
                                0,
                            )));
                        }
                    }
                }
            }
            Purpose::Recover => {
                self.note(&format!(
                    "restarted `{}` after it ended by itself: generation {number} (pid {pid}) is ready after {}",
                    self.name,
                    crate::commands::millis(ready_in)
                ));
            }
            Purpose::Restart {
                answer,
                old_pid,
                old_ended,
                killed,
                old_gone,
            } => {
                self.note(&format!(
                    "restarted `{}`: generation {number} (pid {pid}) is ready after {}",
                    self.name,
                    crate::commands::millis(ready_in)
                ));
                if let Some(answer) = answer {
                    let _ = answer.send(Ok(replaced(
                        number, pid, old_pid, ready_in, old_gone, old_ended, killed,
                    )));
                }
            }
        }
        None
    }

    /// The pending generation will not be ready: it is ended. A reload's
    /// old generation keeps serving; a first start or a restart leaves
    /// nothing serving, and supervision ends.
    fn fail(&mut self, pending: Pending, why: Unready) -> Option<Ending> {
        let Pending {
            generation,
            purpose,
            ..
        } = pending;
        let number = generation.number;
        let pid = generation.pid;
        let ran = generation.began.elapsed();
        let command = generation.command.join(" ");
        let ended = generation.end(&self.record, self.stop_signal, self.stop_timeout);
        let first = matches!(purpose, Purpose::Start);
        let what = match (&why, first) {
            (Unready::Exited, true) => format!("ended at once ({})", ended.how),
            (Unready::Exited, false) => format!("ended before it was ready ({})", ended.how),
            (Unready::Not(why), _) => format!("{why}; it was stopped ({})", ended.how),
        };
        let message = format!(
            "`{command}` (generation {number} of `{}`, pid {pid}) {what}{}{}",
            self.name,
            if ended.tail.is_empty() {
                String::new()
            } else {
                format!("; its last lines:{}", ended.tail)
            },
            if first {
                format!(
                    "\nsee {}",
                    record::log_path(&self.state, &self.name).path().display()
                )
            } else {
                String::new()
            }
        );
        self.note(&message);
        match purpose {
            Purpose::Start => Some(Ending::Failed(message, None)),
            Purpose::Reload(answer) => {
                self.control
                    .set(Phase::Running, self.current.as_ref().map_or(0, |c| c.pid));
                match &self.current {
                    Some(current) => {
                        let kept = format!(
                            "{message}\ngeneration {} (pid {}) keeps serving",
                            current.number, current.pid
                        );
                        self.note(&format!(
                            "reload of `{}` rolled back: generation {} (pid {}) keeps serving",
                            self.name, current.number, current.pid
                        ));
                        if let Some(answer) = answer {
                            let _ = answer.send(Err(kept));
                        }
                        None
                    }
                    None => {
                        let gone = format!(
                            "{message}\nthe old generation had ended meanwhile: nothing serves"
                        );
                        Some(Ending::Failed(gone, answer))
                    }
                }
            }
            Purpose::Restart { answer, .. } => Some(Ending::Failed(message, answer)),
            Purpose::Recover => {
                self.control.set(Phase::Restarting, pid);
                self.schedule(ran, &ended.how, &ended.tail)
            }
        }
    }

    /// Ends whatever is left of the run, cleans up, answers, and returns
    /// the supervisor's exit.
    fn finish(mut self, ending: Ending, mut report: Reporter) -> ExitCode {
        if let Some(health) = &self.health {
            health.pause();
        }
        let pid = self
            .current
            .as_ref()
            .map_or(self.record.pid, |current| current.pid);
        self.control.set(Phase::Stopping, pid);
        let began = Instant::now();
        let (timeout, by_itself) = match &ending {
            Ending::Stop(timeout) => (*timeout, false),
            Ending::Exited | Ending::Failed(..) => (self.stop_timeout, true),
        };
        let leaf = match &self.containment {
            Containment::Cgroup(leaf) => Some(leaf.clone()),
            Containment::GroupAndMarker(_) => None,
        };
        // Reloads asked for and not yet taken, and the one under way.
        for (_, answer) in self.control.asked() {
            let _ = answer.send(Err("the service is stopping".into()));
        }
        let pending = self.pending.take().map(|pending| {
            if let Purpose::Reload(Some(answer))
            | Purpose::Restart {
                answer: Some(answer),
                ..
            } = pending.purpose
            {
                let _ = answer.send(Err(format!(
                    "the service was stopped before generation {} was ready",
                    pending.generation.number
                )));
            }
            pending.generation
        });
        let generations: Vec<Generation> = self
            .current
            .take()
            .into_iter()
            .chain(pending)
            .chain(self.leftover.take())
            .collect();
        // The main processes (pinned: our unreaped children, ended or
        // not) and whatever is left of the run.
        let targets: Vec<Pinned> = generations
            .iter()
            .filter_map(|generation| Pinned::open(generation.pid))
            .collect();
        let claim = Claim::of(&self.record, leaf.as_ref());
        let stopped = stop::end_run(
            leaf.as_ref(),
            targets,
            &self.record,
            claim,
            self.stop_signal,
            timeout,
            Reach::Run,
        );
        // An old generation being ended: the stop above reached its
        // processes too (its cgroup is below the service's; without one,
        // they carry the run's marker), so its thread ends now.
        if let Some(retiring) = self.retiring.take() {
            let _ = retiring.thread.join();
            if let Some(answer) = retiring.then.answer() {
                let _ = answer.send(Err(format!(
                    "the service was stopped while generation {} (pid {}) was being ended",
                    retiring.number, retiring.pid
                )));
            }
        }
        let mut ended = String::from("unknown");
        for generation in generations {
            let is_main = generation.pid == pid;
            let how = generation.reap();
            if is_main {
                ended = how;
            }
        }
        let killed = match &stopped {
            Ok(killed) => *killed,
            Err(_) => 0,
        };
        {
            let mut log = lock_log(&self.log);
            match (&stopped, by_itself) {
                // Said already, with the reason.
                (Ok(_), true) if matches!(ending, Ending::Failed(..)) => {}
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
        for held in &self.held {
            held.remove_socket_file();
        }
        if stopped.is_ok() && self.record.pid != 0 {
            let _ = record::remove_if_still(&self.pid_path, &self.record);
        }
        drop(self.held);
        drop(self.lock);
        match &ending {
            Ending::Failed(message, _) => report.send(&Report::Failed {
                message: message.clone(),
                code: Exit::Failure.code(),
            }),
            Ending::Stop(_) => report.send(&Report::Failed {
                message: format!("`{}` was stopped while it started", self.name),
                code: Exit::Failure.code(),
            }),
            Ending::Exited => report.send(&Report::Failed {
                message: format!(
                    "`{}` ended ({ended}); see {}",
                    self.command.join(" "),
                    record::log_path(&self.state, &self.name).path().display()
                ),
                code: Exit::Failure.code(),
            }),
        }
        // A client that asked for the restart that failed hears it now,
        // with nothing left: a `start` right after finds the name free.
        if let Ending::Failed(message, Some(answer)) = ending {
            let _ = answer.send(Err(message));
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

/// The answer to a reload or restart that replaced `old_pid` by `pid`.
fn replaced(
    generation: u32,
    pid: i32,
    old_pid: i32,
    ready_in: Duration,
    old_gone: Duration,
    old_ended: String,
    killed: usize,
) -> ReloadReply {
    ReloadReply {
        generation,
        pid,
        old_pid,
        ready_ms: ready_in.as_millis() as u64,
        old_gone_ms: old_gone.as_millis() as u64,
        old_ended,
        killed,
    }
}

/// How long the supervisor waits, once the run has ended, for the rest of
/// its output (a process outside the cgroup may still hold the pipe).
pub(super) const PUMP_WAIT: Duration = Duration::from_secs(5);

pub(super) fn lock_log(log: &Mutex<RotatingLog>) -> std::sync::MutexGuard<'_, RotatingLog> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `exit code 0`, `signal 9`.
pub(super) fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

/// How a process ended, as `waitid` tells it.
#[derive(Debug, Clone, Copy)]
enum HowEnded {
    Code(i32),
    Signal(i32),
}

impl HowEnded {
    /// As [`describe`] says it.
    fn describe(self) -> String {
        match self {
            Self::Code(code) => format!("exit code {code}"),
            Self::Signal(signal) => format!("signal {signal}"),
        }
    }
}

/// How the process behind `pidfd` (our child, ended) ended, leaving it
/// unreaped (`WNOWAIT`): its PID stays ours until it is reaped.
fn peek_exit(pidfd: &std::os::fd::OwnedFd) -> Option<HowEnded> {
    use rustix::process::{WaitId, WaitIdOptions, waitid};
    use std::os::fd::AsFd;
    let status = waitid(
        WaitId::PidFd(pidfd.as_fd()),
        WaitIdOptions::EXITED | WaitIdOptions::NOWAIT | WaitIdOptions::NOHANG,
    )
    .ok()??;
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => Some(HowEnded::Code(code)),
        (None, Some(signal)) => Some(HowEnded::Signal(signal)),
        _ => None,
    }
}
