//! The CLI's side of a supervisor's socket. A socket is trusted only when
//! the process at its other end (the kernel says which, `SO_PEERCRED`) is
//! the supervisor the record names: that PID, started at the recorded
//! time, as the recorded user, carrying the record's marker as the
//! supervisor's. Anything else, a socket planted in `.lichtara/` say, is
//! never believed: the command works from the record and the cgroup
//! instead, as it does when the supervisor is gone.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::project::Project;
use crate::protocol::{
    ReloadReply, Reply, Request, StatusReply, StopReply, socket_name, supervises,
};
use crate::record::Record;
use crate::state::StateDir;
use crate::{procfs, terminate};

/// Whether the supervisor `record` names is alive and is that supervisor.
pub(crate) fn supervisor_alive(record: &Record) -> bool {
    check_supervisor(record, None).is_ok()
}

/// Why the process `peer` (or the recorded one) is not `record`'s
/// supervisor, if it is not.
fn check_supervisor(record: &Record, peer: Option<(i32, u32)>) -> Result<(), String> {
    let Some(supervisor) = record.supervisor else {
        return Err("the record names no supervisor".into());
    };
    let uid = record.uid.unwrap_or_else(crate::ownership::current_uid);
    if let Some((pid, peer_uid)) = peer {
        if pid != supervisor.pid {
            return Err(format!(
                "its socket is served by pid {pid}, not by the recorded supervisor {}",
                supervisor.pid
            ));
        }
        if peer_uid != uid {
            return Err(format!("its socket is served by uid {peer_uid}, not {uid}"));
        }
    }
    match procfs::stat(supervisor.pid) {
        Ok(stat) if stat.start_time == supervisor.start_time && !stat.is_zombie() => {}
        _ => return Err(format!("its supervisor (pid {}) is gone", supervisor.pid)),
    }
    if procfs::uid(supervisor.pid).ok() != Some(uid) {
        return Err(format!("pid {} runs as another user", supervisor.pid));
    }
    match supervises(supervisor.pid) {
        Some(marker) if marker == record.marker => Ok(()),
        _ => Err(format!(
            "pid {} does not carry the marker of this run's supervisor",
            supervisor.pid
        )),
    }
}

/// Asks `record`'s supervisor to stop its service by signal (SIGTERM: it
/// stops the run as `stop` would) when its socket cannot be used, and
/// waits until it has exited. The supervisor is pinned by a pidfd, then
/// proved (PID, start time, user, marker), then signalled.
pub(crate) fn stop_by_signal(record: &Record, timeout: Duration) -> Result<(), String> {
    let supervisor = record
        .supervisor
        .ok_or_else(|| "the record names no supervisor".to_owned())?;
    let pinned = terminate::Pinned::open(supervisor.pid)
        .ok_or_else(|| format!("its supervisor (pid {}) is gone", supervisor.pid))?;
    check_supervisor(record, None)?;
    pinned.signal(rustix::process::Signal::TERM);
    let wait = timeout + terminate::KILL_WAIT * 3 + STATUS_TIMEOUT;
    if terminate::wait_exit(vec![pinned], wait).is_empty() {
        Ok(())
    } else {
        Err(format!(
            "its supervisor (pid {}) did not finish within {} of SIGTERM",
            supervisor.pid,
            humantime::format_duration(wait)
        ))
    }
}

/// A connection to the live supervisor of a service.
pub(crate) struct Connection {
    stream: UnixStream,
    /// The supervisor at the other end, pinned: a stop waits for it to
    /// exit, so that its lock is free when `stop` returns (`stop && start`).
    supervisor: Option<terminate::Pinned>,
}

/// How long a status request may take (a supervisor answers from memory,
/// at once; one that is stopped, SIGSTOP, does not).
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    /// Connects to `record`'s supervisor; the error says why not (it is
    /// gone, or the socket is not its).
    pub(crate) fn open(state: &StateDir, name: &str, record: &Record) -> Result<Self, String> {
        check_supervisor(record, None)?;
        let stream = UnixStream::connect(state.fd_path(&socket_name(name)))
            .map_err(|err| format!("cannot reach its supervisor's socket: {err}"))?;
        let peer = rustix::net::sockopt::socket_peercred(&stream)
            .map_err(|err| format!("cannot read its socket's peer: {err}"))?;
        let pid = peer.pid.as_raw_nonzero().get();
        check_supervisor(record, Some((pid, peer.uid.as_raw())))?;
        Ok(Self {
            stream,
            supervisor: terminate::Pinned::open(pid),
        })
    }

    /// Connects to the supervisor of `name` when there is no record to
    /// name it: believed only if the kernel says the process at the
    /// socket's other end runs as this user and carries this project's
    /// and name's supervisor marker.
    pub(crate) fn find(project: &Project, state: &StateDir, name: &str) -> Result<Self, String> {
        let socket = socket_name(name);
        if !state.is_socket(&socket) {
            return Err("no supervisor socket".into());
        }
        let stream = UnixStream::connect(state.fd_path(&socket))
            .map_err(|err| format!("cannot reach the supervisor's socket: {err}"))?;
        let peer = rustix::net::sockopt::socket_peercred(&stream)
            .map_err(|err| format!("cannot read its socket's peer: {err}"))?;
        let pid = peer.pid.as_raw_nonzero().get();
        let prefix = format!("{}{name}/", project.marker_prefix());
        let ours = peer.uid.as_raw() == crate::ownership::current_uid()
            && procfs::uid(pid).ok() == Some(peer.uid.as_raw())
            && supervises(pid).is_some_and(|marker| marker.starts_with(&prefix));
        if !ours {
            return Err(format!(
                "the socket is served by pid {pid}, which is not a supervisor of `{name}` here"
            ));
        }
        Ok(Self {
            stream,
            supervisor: terminate::Pinned::open(pid),
        })
    }

    pub(crate) fn status(self) -> Result<StatusReply, String> {
        match self.ask(&Request::Status, STATUS_TIMEOUT)? {
            Reply::Status(status) => Ok(status),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks for a stop and waits until the supervisor says the service
    /// has ended (its timeout, SIGKILL, and a margin for a busy machine).
    pub(crate) fn stop(mut self, timeout: Duration) -> Result<StopReply, String> {
        let wait = timeout + terminate::KILL_WAIT * 3 + STATUS_TIMEOUT;
        let request = Request::Stop {
            timeout_ms: timeout.as_millis() as u64,
        };
        let supervisor = self.supervisor.take();
        match self.ask(&request, wait)? {
            Reply::Stopped(stopped) => {
                // It answers, then exits: wait for that, bounded.
                if let Some(supervisor) = supervisor {
                    let pid = supervisor.pid;
                    if !terminate::wait_exit(vec![supervisor], STATUS_TIMEOUT).is_empty() {
                        note!(
                            "its supervisor (pid {pid}) stopped the service but had not exited after {}",
                            humantime::format_duration(STATUS_TIMEOUT)
                        );
                    }
                }
                Ok(stopped)
            }
            other => Err(unexpected(&other)),
        }
    }

    /// Asks for a reload (or, with `restart`, a restart with the old
    /// generation given `restart`'s timeout) and waits for its outcome:
    /// the new generation's readiness and the old one's end, bounded by
    /// the supervisor's own timeouts (from a status asked first) and a
    /// margin.
    pub(crate) fn reload(
        self,
        state: &StateDir,
        name: &str,
        record: &Record,
        restart: Option<Duration>,
        command: Option<Vec<String>>,
    ) -> Result<ReloadReply, String> {
        let status = self.status()?;
        let wait = Duration::from_millis(status.ready_timeout_ms)
            + restart.unwrap_or(Duration::from_millis(status.stop_timeout_ms))
            + terminate::KILL_WAIT * 3
            + STATUS_TIMEOUT * 2;
        let again = Self::open(state, name, record)?;
        let request = match restart {
            Some(timeout) => Request::Restart {
                timeout_ms: timeout.as_millis() as u64,
                command,
            },
            None => Request::Reload { command },
        };
        match again.ask(&request, wait)? {
            Reply::Reloaded(reloaded) => Ok(reloaded),
            Reply::Error(message) => Err(message),
            other => Err(unexpected(&other)),
        }
    }

    fn ask(mut self, request: &Request, wait: Duration) -> Result<Reply, String> {
        let mut line = serde_json::to_string(request).map_err(|err| err.to_string())?;
        line.push('\n');
        // A supervisor that refuses (too many clients) answers and closes
        // before reading: its answer is read even if the write failed.
        let sent = self
            .stream
            .set_write_timeout(Some(STATUS_TIMEOUT))
            .and_then(|()| self.stream.write_all(line.as_bytes()));
        self.stream
            .set_read_timeout(Some(wait))
            .map_err(|err| err.to_string())?;
        let mut answer = String::new();
        let read = BufReader::new((&self.stream).take(64 * 1024)).read_line(&mut answer);
        match (read, sent) {
            (Ok(n), _) if n > 0 => {}
            (_, Err(err)) => return Err(format!("cannot ask its supervisor: {err}")),
            (Ok(_), Ok(())) => {
                return Err("its supervisor closed the connection without an answer".into());
            }
            (Err(err), Ok(()))
                if err.kind() == std::io::ErrorKind::WouldBlock
                    || err.kind() == std::io::ErrorKind::TimedOut =>
            {
                return Err(format!(
                    "no answer from its supervisor within {} (is it stopped, or the machine overloaded?)",
                    humantime::format_duration(wait)
                ));
            }
            (Err(err), Ok(())) => return Err(format!("no answer from its supervisor: {err}")),
        }
        serde_json::from_str(&answer).map_err(|err| format!("its supervisor's answer: {err}"))
    }
}

fn unexpected(reply: &Reply) -> String {
    match reply {
        Reply::Error(message) => format!("its supervisor said: {message}"),
        other => format!("its supervisor answered something else: {other:?}"),
    }
}
