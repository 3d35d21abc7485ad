//! The PID file `.lichtara/<name>.pid`: who was started, and how to tell it
//! from a stranger that later got the same PID. Written atomically; read
//! only when it is a regular file of ours. The lock `.lichtara/<name>.lock`
//! is held by the running service itself (it inherits the locked file), so
//! two starts of one name cannot both win.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;

use crate::Failure;
use crate::containment::Containment;
use crate::ownership::{self, Claim, Proof};
pub(crate) use crate::pidfile::{Record, parse};
use crate::procfs;
use crate::project::Project;
use crate::state::{Access, StateDir, StateFile};
use crate::terminate::Pinned;

/// What a record says about the world now.
pub(crate) enum Liveness {
    /// The recorded process is alive, and proved to be the one recorded
    /// (pinned: safe to signal).
    Running(Pinned),
    /// The record points at nothing, or at a process that has since
    /// ended: safe to remove, nothing to signal.
    Stale(String),
    /// The record was not written for this project's service (a copy of
    /// another directory's, or planted): it says nothing about this
    /// project, and its process is never acted on.
    Foreign(String),
    /// The record names a live process that is not provably the one
    /// recorded: never signalled, and the record is left as it is.
    Refused(String),
}

impl Record {
    /// Checks that the record is this project's and service's, and that
    /// the recorded process is still the one recorded (`ownership`).
    pub(crate) fn liveness(&self, project: &Project, name: &str) -> Liveness {
        if let Err(why) = ownership::check_record(project, name, self) {
            return Liveness::Foreign(why);
        }
        match procfs::boot_id() {
            Ok(boot) if boot != self.boot_id => {
                return Liveness::Stale("recorded during an earlier boot".into());
            }
            Err(err) => return Liveness::Refused(format!("cannot read the boot id: {err}")),
            Ok(_) => {}
        }
        let leaf = match Containment::of(project, name, false) {
            Containment::Cgroup(leaf) if leaf.exists() => Some(leaf),
            _ => None,
        };
        match ownership::prove(self.pid, self.start_time, Claim::of(self, leaf.as_ref())) {
            Proof::Proven(pinned) => Liveness::Running(pinned),
            Proof::Gone => Liveness::Stale(match procfs::stat(self.pid) {
                Ok(stat) if !stat.is_zombie() => format!(
                    "PID {} now belongs to another process (started at tick {}, not {})",
                    self.pid, stat.start_time, self.start_time
                ),
                _ => format!("process {} is gone", self.pid),
            }),
            Proof::Refused(refusal) => Liveness::Refused(refusal.to_string()),
        }
    }
}

pub(crate) fn pid_path(state: &StateDir, name: &str) -> StateFile {
    state.file(&format!("{name}.pid"))
}

pub(crate) fn log_path(state: &StateDir, name: &str) -> StateFile {
    state.file(&format!("{name}.log"))
}

pub(crate) fn lock_path(state: &StateDir, name: &str) -> StateFile {
    state.file(&format!("{name}.lock"))
}

/// Reads the record; `None` when there is no PID file.
pub(crate) fn read(file: &StateFile) -> Result<Option<Record>, Failure> {
    let Some(opened) = file.open(Access::Read, "read")? else {
        return Ok(None);
    };
    let mut text = String::new();
    opened
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|err| Failure::new(format!("{}: {err}", file.path().display())))?;
    parse(&text).map(Some).map_err(|err| {
        Failure::new(format!(
            "{} is not a lichtara PID file ({err}); inspect it, then remove it",
            file.path().display()
        ))
    })
}

/// Writes the record atomically: a private temporary file, synced, then
/// renamed over the PID file (both relative to the folder's descriptor).
pub(crate) fn write(file: &StateFile, record: &Record) -> Result<(), Failure> {
    write_json(
        file,
        &format!(".{}.tmp{}", record.name, std::process::id()),
        record,
    )
}

/// `value` as pretty JSON, atomically: the private temporary file `tmp`,
/// synced, then renamed over `file`.
fn write_json(file: &StateFile, tmp: &str, value: &impl serde::Serialize) -> Result<(), Failure> {
    let result = (|| {
        let mut out = file.create_new(tmp)?;
        let text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
        out.write_all(text.as_bytes())?;
        out.write_all(b"\n")?;
        out.sync_all()?;
        file.replace_with(tmp)
    })();
    result.map_err(|err| {
        let _ = file.unlink_named(tmp);
        Failure::new(format!("cannot write {}: {err}", file.path().display()))
    })
}

/// Removes the PID file if it is (still) a regular file of ours.
pub(crate) fn remove(file: &StateFile) -> Result<(), Failure> {
    if file.open(Access::Read, "remove")?.is_some() {
        file.unlink().map_err(|err| {
            Failure::new(format!("cannot remove {}: {err}", file.path().display()))
        })?;
    }
    Ok(())
}

/// Removes the PID file only if it still holds `record`: a `start` that
/// ran while a slow `stop` waited has written its own, which is not this
/// command's to remove.
/// Whether it was removed.
pub(crate) fn remove_if_still(file: &StateFile, record: &Record) -> Result<bool, Failure> {
    match read(file) {
        Ok(Some(now)) if now == *record => remove(file).map(|()| true),
        Ok(_) | Err(_) => Ok(false),
    }
}

/// `.lichtara/<name>.failed`: a service that crashed more often than its
/// restart policy allows. Written by its supervisor as it gives up, shown
/// by `status` and `ps`, removed by the next `start`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Failed {
    /// Seconds since the Unix epoch.
    pub(crate) at: u64,
    /// How its last generation ended: `exit code 1`, `signal 11`.
    pub(crate) ended: String,
    /// Restarts made before giving up.
    pub(crate) restarts: u32,
    /// What the supervisor said.
    pub(crate) why: String,
    /// Its last lines of output, indented.
    pub(crate) tail: String,
}

pub(crate) fn failed_path(state: &StateDir, name: &str) -> StateFile {
    state.file(&format!("{name}.failed"))
}

/// Writes `failed` (atomically, as the record is).
pub(crate) fn write_failed(file: &StateFile, name: &str, failed: &Failed) -> Result<(), Failure> {
    write_json(
        file,
        &format!(".{name}.failed.tmp{}", std::process::id()),
        failed,
    )
}

/// The failure recorded for a service, if any (and readable).
pub(crate) fn read_failed(file: &StateFile) -> Option<Failed> {
    let mut text = String::new();
    file.open(Access::Read, "read")
        .ok()??
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    serde_json::from_str(&text).ok()
}

/// The lock of one service name.
pub(crate) struct Lock {
    pub(crate) file: File,
}

/// Takes the lock of `name`, or `None` when a live process holds it.
pub(crate) fn lock(state: &StateDir, name: &str) -> Result<Option<Lock>, Failure> {
    let path = lock_path(state, name);
    let file = path
        .open(Access::Lock, "lock")?
        .ok_or_else(|| Failure::new(format!("cannot create {}", path.path().display())))?;
    match rustix::fs::flock(
        file.as_fd(),
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    ) {
        Ok(()) => Ok(Some(Lock { file })),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(err) => Err(Failure::new(format!(
            "cannot lock {}: {err}",
            path.path().display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            name: "server".into(),
            pid: 4242,
            pgid: 4242,
            start_time: 99,
            boot_id: "b".into(),
            command: vec!["python3".into(), "-m".into(), "http.server".into()],
            started_at: 1_764_150_000,
            marker: "0123456789abcdef/server/1".into(),
            uid: Some(1000),
            supervisor: Some(crate::pidfile::SupervisorId {
                pid: 4241,
                start_time: 98,
            }),
        }
    }

    #[test]
    fn a_record_round_trips() {
        let text = serde_json::to_string(&sample()).unwrap();
        assert_eq!(parse(&text).unwrap(), sample());
    }

    #[test]
    fn garbage_and_dangerous_pids_are_refused() {
        assert!(parse("").is_err());
        assert!(parse("1234").is_err());
        assert!(parse("{\"pid\": 5}").is_err());
        for pid in [-1, 0, 1] {
            let mut record = sample();
            record.pid = pid;
            let text = serde_json::to_string(&record).unwrap();
            assert!(parse(&text).unwrap_err().contains("cannot be a service"));
        }
    }
}
