//! `run --watch`: the files whose change restarts the command. Every
//! directory under each watched path is watched with inotify (one watch
//! each, added as directories appear), but `.git`, `target` and
//! `.lichtara`; a burst of changes (a save, a `git checkout`, a build)
//! counts once: the change is reported when the paths have been quiet for
//! [`QUIET`], or after [`LONGEST`] of changes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};

use crate::Failure;

/// How long the paths stay unchanged before a change counts.
pub(crate) const QUIET: Duration = Duration::from_millis(200);

/// How long a burst of changes may delay the restart.
const LONGEST: Duration = Duration::from_secs(2);

/// Names never watched, nor counted as a change.
const IGNORED: [&str; 3] = [".git", "target", ".lichtara"];

/// At most this many directories are watched (the kernel's per-user limit
/// is usually 8192 or more).
const MOST_DIRECTORIES: usize = 4096;

/// The watched paths.
pub(crate) struct Watcher {
    fd: OwnedFd,
    /// Each watch's directory (or file).
    watches: HashMap<i32, PathBuf>,
}

impl Watcher {
    /// Watches `paths` (relative ones are the project directory's).
    pub(crate) fn new(base: &Path, paths: &[PathBuf]) -> Result<Self, Failure> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)
            .map_err(|err| Failure::new(format!("cannot watch files (inotify): {err}")))?;
        let mut watcher = Self {
            fd,
            watches: HashMap::new(),
        };
        for path in paths {
            let path = base.join(path);
            if !path.exists() {
                return Err(Failure::new(format!(
                    "--watch {}: no such file or directory",
                    path.display()
                )));
            }
            watcher.add_tree(&path)?;
        }
        Ok(watcher)
    }

    fn add_tree(&mut self, root: &Path) -> Result<(), Failure> {
        let mut pending = vec![root.to_path_buf()];
        while let Some(path) = pending.pop() {
            if self.watches.len() >= MOST_DIRECTORIES {
                return Err(Failure::new(format!(
                    "--watch: more than {MOST_DIRECTORIES} directories; watch fewer paths"
                )));
            }
            let flags = WatchFlags::CLOSE_WRITE
                | WatchFlags::MODIFY
                | WatchFlags::CREATE
                | WatchFlags::DELETE
                | WatchFlags::MOVED_FROM
                | WatchFlags::MOVED_TO
                | WatchFlags::DELETE_SELF
                | WatchFlags::DONT_FOLLOW;
            let watch = inotify::add_watch(&self.fd, &path, flags)
                .map_err(|err| Failure::new(format!("cannot watch {}: {err}", path.display())))?;
            self.watches.insert(watch, path.clone());
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                    let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
                    if is_dir && !ignored(&entry.file_name()) {
                        pending.push(entry.path());
                    }
                }
            }
        }
        Ok(())
    }

    /// Blocks until a change (debounced); returns the first path changed.
    /// `None` if the watcher cannot read any more.
    pub(crate) fn next_change(&mut self) -> Option<PathBuf> {
        let mut first = None;
        let mut began = None;
        loop {
            let wait = match began {
                None => None,
                Some(began) => {
                    let left = LONGEST.saturating_sub(Instant::elapsed(&began));
                    if left.is_zero() {
                        return first;
                    }
                    Some(QUIET.min(left))
                }
            };
            let timespec = wait.map(|wait| rustix::time::Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, timespec.as_ref()) {
                Ok(0) if first.is_some() => return first,
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return None,
            }
            for changed in self.read_changes() {
                if first.is_none() {
                    first = Some(changed);
                    began = Some(Instant::now());
                }
            }
        }
    }

    /// The paths changed in the events waiting now; new directories are
    /// watched from now on.
    fn read_changes(&mut self) -> Vec<PathBuf> {
        let mut buffer = [std::mem::MaybeUninit::<u8>::uninit(); 8192];
        let mut changed = Vec::new();
        let mut new_dirs = Vec::new();
        let mut reader = inotify::Reader::new(self.fd.as_fd(), &mut buffer);
        while let Ok(event) = reader.next() {
            let Some(dir) = self.watches.get(&event.wd()) else {
                continue;
            };
            let path = match event.file_name() {
                Some(name) if !name.to_bytes().is_empty() => {
                    let name = OsStr::new(std::str::from_utf8(name.to_bytes()).unwrap_or("?"));
                    if ignored(name) {
                        continue;
                    }
                    dir.join(name)
                }
                _ => dir.clone(),
            };
            if event.events().contains(ReadFlags::ISDIR)
                && event
                    .events()
                    .intersects(ReadFlags::CREATE | ReadFlags::MOVED_TO)
            {
                new_dirs.push(path.clone());
            }
            changed.push(path);
        }
        for dir in new_dirs {
            // A directory that vanished again is no change to watch.
            let _ = self.add_tree(&dir);
        }
        changed
    }
}

fn ignored(name: &OsStr) -> bool {
    IGNORED.iter().any(|ignored| name == *ignored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_seen_once_and_ignored_folders_are_not() {
        let dir = std::env::temp_dir().join(format!("lichtara-watch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::create_dir_all(dir.join("target")).unwrap();
        let mut watcher = Watcher::new(&dir, &[PathBuf::from(".")]).unwrap();
        // Ignored: nothing is read from it.
        std::fs::write(dir.join("target/out"), "x").unwrap();
        std::fs::write(dir.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(dir.join("src/main.rs"), "fn main() { }").unwrap();
        let changed = watcher.next_change().expect("a change");
        assert!(changed.ends_with("src/main.rs"), "{changed:?}");
        // The burst was one change: nothing more waits.
        assert!(watcher.read_changes().is_empty());
        // A directory made later is watched too.
        std::fs::create_dir(dir.join("src/new")).unwrap();
        assert!(watcher.next_change().unwrap().ends_with("src/new"));
        std::fs::write(dir.join("src/new/file"), "x").unwrap();
        assert!(watcher.next_change().unwrap().ends_with("src/new/file"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
