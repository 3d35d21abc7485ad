//! Proof that a process belongs to this project, before any signal.
//!
//! A record (the PID file) is only a claim: a copy of the project directory
//! carries a copy of it, and anyone who can write it can make it name any
//! process with that process's real start time. So the claim is checked
//! against what only the process itself can show, after a pidfd has pinned
//! it (from then on its PID cannot be recycled under us, so the proof and
//! the signal are about one process):
//!
//! 1. the record was written for *this* project directory: its marker
//!    starts with the project's id, which comes from the directory's device
//!    and inode (a copy has other ones), not from a file a copy duplicates;
//! 2. the process is neither PID 1, this command, nor one of its ancestors;
//! 3. it started when the record says, during this boot, and has not exited;
//! 4. it runs as the user the record names;
//! 5. its environment carries the record's marker, which `start` and `run`
//!    put there and every descendant inherits — or it is in the service's
//!    cgroup leaf (`containment`), which a process that cleared its
//!    environment cannot leave.
//!
//! A process that fails any of them is never signalled; the refusal names
//! the process (PID, user, command) and the proof that failed.

use std::fmt;

use crate::containment::Leaf;
use crate::procfs;
use crate::project::{MARKER_VAR, Project};
use crate::record::Record;
use crate::terminate::Pinned;

/// What a process must show to be signalled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim<'a> {
    /// The exact `LICHTARA_MARKER` value it must carry…
    pub(crate) marker: &'a str,
    /// …unless it is in the service's cgroup leaf, which only a process
    /// of the service can be in (it cleared its environment, say).
    pub(crate) leaf: Option<&'a Leaf>,
    /// The user it must run as.
    pub(crate) uid: u32,
}

impl<'a> Claim<'a> {
    /// What the processes of `record`'s run must show.
    pub(crate) fn of(record: &'a Record, leaf: Option<&'a Leaf>) -> Self {
        Self {
            marker: &record.marker,
            leaf,
            uid: record.uid.unwrap_or_else(current_uid),
        }
    }
}

/// Why a process is left alone.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) pid: i32,
    /// The proof that failed, in words.
    pub(crate) proof: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = procfs::uid(self.pid).map_or_else(|_| "?".to_owned(), user_name);
        let mut command = procfs::cmdline(self.pid);
        if command.is_empty() {
            command = "?".into();
        }
        write!(
            f,
            "process {} (user {user}, `{command}`) is not provably this project's: {}",
            self.pid, self.proof
        )
    }
}

/// The outcome of a proof.
pub(crate) enum Proof {
    /// Pinned and proved: safe to signal through the pin.
    Proven(Pinned),
    /// It ended (or its PID now names another process): nothing to signal.
    Gone,
    /// A live process that is not provably ours: never signalled.
    Refused(Refusal),
}

/// Checks that the record was written for this project and service: a
/// PID file copied along with the directory, or planted, names another.
pub(crate) fn check_record(project: &Project, name: &str, record: &Record) -> Result<(), String> {
    let expected = format!("{}/{name}/", project.id);
    if !record.marker.starts_with(&expected) {
        return Err(format!(
            "the PID file was written for another project directory or service (marker {:?}; this one's begin {expected:?}): was the directory copied?",
            record.marker
        ));
    }
    if record.name != name {
        return Err(format!(
            "the PID file names service `{}`, not `{name}`",
            record.name
        ));
    }
    Ok(())
}

/// Pins `pid` and proves it is the process that started at `start_time`
/// and carries `claim`.
pub(crate) fn prove(pid: i32, start_time: u64, claim: Claim<'_>) -> Proof {
    let refuse = |proof: String| Proof::Refused(Refusal { pid, proof });
    if pid <= 1 {
        return refuse("PID 1 and below are never signalled".into());
    }
    if ancestry_reaches(std::process::id() as i32, pid) {
        return refuse("it is this command or one of its ancestors".into());
    }
    // Only a process that is gone is taken as gone: any other failure to
    // look (out of descriptors, say) is a refusal, never "stale".
    let pinned = match Pinned::try_open(pid) {
        Ok(Some(pinned)) => pinned,
        Ok(None) => return Proof::Gone,
        Err(err) => return refuse(format!("it cannot be pinned ({err})")),
    };
    // Everything below is read after the pidfd exists: a recycled PID
    // would show another start time.
    let stat = match procfs::stat(pid) {
        Ok(stat) => stat,
        Err(err) if is_gone(&err) => return Proof::Gone,
        Err(err) => return refuse(format!("/proc/{pid}/stat cannot be read ({err})")),
    };
    if stat.start_time != start_time || stat.is_zombie() {
        return Proof::Gone;
    }
    match procfs::uid(pid) {
        Ok(uid) if uid == claim.uid => {}
        Ok(uid) => {
            return refuse(format!(
                "it runs as {}, the record names {}",
                user_name(uid),
                user_name(claim.uid)
            ));
        }
        Err(err) if is_gone(&err) => return Proof::Gone,
        Err(err) => return refuse(format!("/proc/{pid}/status cannot be read ({err})")),
    }
    match procfs::environ_var(pid, MARKER_VAR) {
        Ok(Some(marker)) if marker == claim.marker => Proof::Proven(pinned),
        _ if claim.leaf.is_some_and(|leaf| leaf.holds(pid)) => Proof::Proven(pinned),
        Ok(Some(marker)) => refuse(format!(
            "it carries marker {marker:?}, not {:?}",
            claim.marker
        )),
        Ok(None) => refuse(format!(
            "its environment has no {MARKER_VAR} (a process that cleared its environment, or not one this project started)"
        )),
        Err(err) if is_gone(&err) => Proof::Gone,
        Err(err) => refuse(format!("its environment cannot be read ({err})")),
    }
}

/// Whether a /proc read failed because the process is gone.
fn is_gone(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::NotFound
        || err.raw_os_error() == Some(rustix::io::Errno::SRCH.raw_os_error())
}

/// Pins `pid` if it is still the process that started at `start_time` and
/// descends from this one: proof by parentage, for `run`, whose
/// descendants are re-parented to it (a child subreaper) and cannot be
/// recycled while they are its unreaped children.
pub(crate) fn pin_descendant(pid: i32, start_time: u64) -> Option<Pinned> {
    let pinned = Pinned::open(pid)?;
    let stat = procfs::stat(pid).ok()?;
    (stat.start_time == start_time
        && !stat.is_zombie()
        && ancestry_reaches(stat.ppid, std::process::id() as i32))
    .then_some(pinned)
}

/// Whether walking up from `from`, parent by parent, reaches `target`
/// (`from` itself included).
fn ancestry_reaches(from: i32, target: i32) -> bool {
    let mut cursor = from;
    // Bounded: a PID chain cannot be longer than the PID space, and a
    // cycle (impossible, but /proc is read in pieces) ends the walk.
    for _ in 0..4096 {
        if cursor == target {
            return true;
        }
        match procfs::stat(cursor) {
            Ok(stat) if stat.ppid > 0 && stat.ppid != cursor => cursor = stat.ppid,
            _ => return false,
        }
    }
    false
}

pub(crate) fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// `name (uid N)` from /etc/passwd, else `uid N`.
pub(crate) fn user_name(uid: u32) -> String {
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_owned())
            })
        });
    match name {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}
