//! Containment: where a service's processes are kept so that none of them
//! can get away.
//!
//! Where a writable cgroup v2 hierarchy exists, every service runs in a
//! leaf of its own, `<base>/<project id>/<name>`, entered between fork and
//! exec: no descendant can leave it (a double fork, `setsid`, `env -i` —
//! membership is inherited and only someone who may write another
//! cgroup's `cgroup.procs` can move a process out). Membership is then a
//! proof of ownership that needs no marker; `stop` waits for the leaf's
//! `cgroup.events` to say `populated 0` (an inotify event, not polling)
//! and ends with `cgroup.kill`.
//!
//! The base is `LICHTARA_CGROUP_BASE` if set (the tests give each run a
//! subtree of its own; `off` under a systemd unit, whose cgroup contains
//! the service already), else `lichtara/` at the root of the first cgroup2
//! mount in `/proc/self/mountinfo` (never a hard-coded path). Where there
//! is none, or it is not writable (a container without delegation), the
//! process group and the marker are all there is, and commands say so.
//! The leaf is computed, never read from a file: a forged PID file cannot
//! point `cgroup.kill` at someone else's cgroup.

use std::fs;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::inotify;

use crate::Failure;
use crate::project::Project;

/// Overrides where the services' cgroups are made.
pub(crate) const BASE_VAR: &str = "LICHTARA_CGROUP_BASE";

/// How a service is contained.
#[derive(Debug)]
pub(crate) enum Containment {
    /// In a cgroup v2 leaf of its own.
    Cgroup(Leaf),
    /// Its process group and the marker only, and why.
    GroupAndMarker(String),
}

impl Containment {
    /// What is in force for service `name` of `project`, creating the
    /// cgroups it needs when `create` (`start`); commands that only look
    /// pass `false`.
    pub(crate) fn of(project: &Project, name: &str, create: bool) -> Self {
        match base() {
            Err(why) => Self::GroupAndMarker(why),
            Ok(base) => {
                let path = base.join(&project.id).join(name);
                let leaf = Leaf { path };
                if create {
                    match leaf.create() {
                        Ok(leaf) => Self::Cgroup(leaf),
                        Err(err) => Self::GroupAndMarker(format!(
                            "cannot create the cgroup {}: {err}",
                            leaf.path.display()
                        )),
                    }
                } else {
                    // Compared with /proc/PID/cgroup as text: the real
                    // path, whatever links or `..` the base was given with.
                    Self::Cgroup(Leaf {
                        path: fs::canonicalize(&leaf.path).unwrap_or(leaf.path),
                    })
                }
            }
        }
    }

    /// One line for `start` and `status`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::Cgroup(leaf) => format!("cgroup v2 {}", leaf.path.display()),
            Self::GroupAndMarker(why) => {
                format!("process group and LICHTARA_MARKER only ({why})")
            }
        }
    }
}

/// Where the services' cgroups are made, or why there is no such place.
fn base() -> Result<PathBuf, String> {
    if let Some(base) = std::env::var_os(BASE_VAR) {
        if base == "off" {
            return Err(format!(
                "{BASE_VAR}=off: another manager's cgroup (a systemd unit's) contains the service"
            ));
        }
        let base = PathBuf::from(base);
        if !base.is_absolute() {
            return Err(format!("{BASE_VAR} must be an absolute path"));
        }
        return Ok(base);
    }
    let mount = cgroup2_mount().ok_or_else(|| "no cgroup v2 hierarchy is mounted".to_owned())?;
    Ok(mount.join("lichtara"))
}

/// The mount point of the first cgroup2 filesystem in this process's mount
/// namespace, from `/proc/self/mountinfo`.
pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        // Fields: id parent major:minor root mount-point options [optional…] - fstype source …
        let fields: Vec<&str> = line.split_whitespace().collect();
        let separator = fields.iter().position(|field| *field == "-")?;
        let mount = fields.get(4)?;
        (fields.get(separator + 1) == Some(&"cgroup2")).then(|| PathBuf::from(unescape(mount)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'\\' && index + 4 <= bytes.len() {
            let digits = std::str::from_utf8(&bytes[index + 1..index + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(digits, 8) {
                out.push(value);
                index += 4;
                continue;
            }
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One service's cgroup.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    pub(crate) path: PathBuf,
}

impl Leaf {
    /// Makes the leaf; returns it under its real path.
    fn create(&self) -> io::Result<Self> {
        fs::create_dir_all(&self.path)?;
        let path = fs::canonicalize(&self.path)?;
        let meta = fs::symlink_metadata(&path)?;
        if !meta.is_dir() || meta.uid() != rustix::process::getuid().as_raw() {
            return Err(io::Error::other("not a directory of this user"));
        }
        let leaf = Self { path };
        if leaf.mount_relative().is_none() {
            return Err(io::Error::other("not inside the cgroup2 mount"));
        }
        // Writable: a service can be moved in.
        fs::OpenOptions::new()
            .write(true)
            .open(leaf.path.join("cgroup.procs"))?;
        Ok(leaf)
    }

    /// The cgroup of generation `number` below this service's (made now):
    /// `g<number>`. The service's own cgroup then holds no process itself,
    /// and ending one generation (its cgroup) cannot touch another.
    pub(crate) fn generation(&self, number: u32) -> io::Result<Self> {
        let leaf = Self {
            path: self.path.join(format!("g{number}")),
        };
        if leaf.populated() {
            return Err(io::Error::other(format!(
                "{} still holds processes",
                leaf.path.display()
            )));
        }
        // With the service's own, if the last generation's end removed it.
        leaf.create()
    }

    /// Whether the leaf exists and is this user's (a look, not a proof of
    /// more: only this user, or root, can have made it).
    pub(crate) fn exists(&self) -> bool {
        fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == rustix::process::getuid().as_raw())
    }

    /// `cgroup.procs` opened for writing, to move a child in between fork
    /// and exec (`enter`).
    pub(crate) fn procs_for_entry(&self) -> io::Result<fs::File> {
        fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.procs"))
    }

    /// The leaf and every cgroup the service made below it, deepest first.
    fn subtree(&self) -> Vec<PathBuf> {
        let mut found = vec![self.path.clone()];
        let mut next = 0;
        // Bounded: cgroup.max.depth limits real trees far below this.
        while next < found.len() && found.len() < 10_000 {
            let dir = found[next].clone();
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                    found.push(entry.path());
                }
            }
            next += 1;
        }
        found.reverse();
        found
    }

    /// The PIDs in the leaf, and in cgroups below it, now.
    pub(crate) fn members(&self) -> Vec<i32> {
        self.subtree()
            .iter()
            .flat_map(|dir| {
                fs::read_to_string(dir.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|line| line.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .collect()
    }

    /// Whether `pid` is in this leaf or below it (its `/proc/PID/cgroup`
    /// says so).
    pub(crate) fn holds(&self, pid: i32) -> bool {
        let Some(leaf) = self.mount_relative() else {
            return false;
        };
        fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|text| {
            text.lines()
                .filter_map(|line| line.strip_prefix("0::"))
                .any(|path| {
                    path.strip_prefix(leaf.as_str())
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                })
        })
    }

    /// The leaf's path as `/proc/PID/cgroup` shows it: relative to the
    /// cgroup2 mount (both real paths).
    fn mount_relative(&self) -> Option<String> {
        let mount = fs::canonicalize(cgroup2_mount()?).ok()?;
        let relative = self.path.strip_prefix(&mount).ok()?;
        Some(format!("/{}", relative.display()))
    }

    /// Whether any process is in the leaf or below it.
    /// `memory.current` in bytes, where the v2 memory controller is
    /// enabled for the leaf (not on hybrid hosts that keep it in v1).
    pub(crate) fn memory_current(&self) -> Option<u64> {
        fs::read_to_string(self.path.join("memory.current"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    pub(crate) fn populated(&self) -> bool {
        fs::read_to_string(self.path.join("cgroup.events"))
            .is_ok_and(|text| text.lines().any(|line| line.trim() == "populated 1"))
    }

    /// Waits until the leaf is empty, on `cgroup.events` changes (inotify);
    /// `false` if it is still populated after `timeout`.
    pub(crate) fn wait_empty(&self, timeout: Duration) -> bool {
        // Empty already: no watcher (closing an inotify instance costs
        // milliseconds of the kernel's SRCU grace period).
        if !self.populated() {
            return true;
        }
        let events = self.path.join("cgroup.events");
        let Ok(watcher) =
            inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        else {
            return !self.populated();
        };
        if inotify::add_watch(&watcher, &events, inotify::WatchFlags::MODIFY).is_err() {
            return !self.populated();
        }
        let now = Instant::now();
        let until = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)));
        let mut buffer = [std::mem::MaybeUninit::uninit(); 256];
        // Looked at after the watch exists: no change can fall between.
        while self.populated() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let timespec = rustix::time::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            };
            let mut fds = [PollFd::new(&watcher, PollFlags::IN)];
            match poll(&mut fds, Some(&timespec)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return !self.populated(),
            }
            let mut reader = inotify::Reader::new(watcher.as_fd(), &mut buffer);
            while reader.next().is_ok() {}
        }
        true
    }

    /// Ends every process in the leaf at once (`cgroup.kill`, Linux 5.14);
    /// where the kernel has no `cgroup.kill`, each member is SIGKILLed.
    pub(crate) fn kill(&self) -> io::Result<()> {
        match fs::OpenOptions::new()
            .write(true)
            .open(self.path.join("cgroup.kill"))
        {
            Ok(mut file) => file.write_all(b"1"),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                for pid in self.members() {
                    if let Some(pinned) = crate::terminate::Pinned::open(pid) {
                        if self.holds(pid) {
                            pinned.signal(rustix::process::Signal::KILL);
                        }
                    }
                }
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Removes the leaf (and what the service made below it) once it is
    /// empty, and the project's folder above it if that is empty too.
    pub(crate) fn remove(&self) {
        // Cgroups the service made below its leaf first (deepest first).
        for dir in self.subtree() {
            let _ = fs::remove_dir(dir);
        }
        if !self.path.exists() {
            if let Some(project) = self.path.parent() {
                let _ = fs::remove_dir(project);
            }
        }
    }

    /// The leaves of every service of `project` under the base.
    pub(crate) fn of_project(project: &Project) -> Vec<(String, Leaf)> {
        let Ok(base) = base() else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(base.join(&project.id)) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path());
                (name, Leaf { path })
            })
            .filter(|(_, leaf)| leaf.exists())
            .collect()
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open
/// as `procs`. Async-signal-safe (one write(2)): for between fork and exec.
pub(crate) fn enter(procs: std::os::fd::BorrowedFd<'_>) -> io::Result<()> {
    // "0" means the writing process.
    rustix::io::write(procs, b"0")?;
    Ok(())
}

/// An error for `start` when a leaf is still populated by an earlier run.
pub(crate) fn still_populated(leaf: &Leaf, name: &str) -> Failure {
    Failure::new(format!(
        "the cgroup of `{name}` ({}) still holds processes of an earlier run: {:?}; see `lichtara cleanup --dry-run`",
        leaf.path.display(),
        leaf.members()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(unescape("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape("/mnt/with\\040space"), "/mnt/with space");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    }
}
