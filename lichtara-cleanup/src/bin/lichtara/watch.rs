//! `run --watch`: the files whose change restarts the command. Every
//! directory under each watched path is watched with inotify (one watch
//! each, added as directories appear), but `.git`, `target` and
//! `.lichtara`; a burst of changes (a save, a `git checkout`, a build)
//! counts once: the change is reported when the paths have been quiet for
//! [`QUIET`], or after [`LONGEST`] of changes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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
    /// Each watch's directory, and which of its entries count (`None`:
    /// all of them).
    watches: HashMap<i32, Watch>,
}

/// One watched directory.
struct Watch {
    dir: PathBuf,
    /// Only these entries count (the parent of a watched file, or of a
    /// watched directory, sees its replacement); `None`: every entry.
    only: Option<Vec<std::ffi::OsString>>,
}

/// What is watched in every directory.
const FLAGS: WatchFlags = WatchFlags::CLOSE_WRITE
    .union(WatchFlags::MODIFY)
    .union(WatchFlags::CREATE)
    .union(WatchFlags::DELETE)
    .union(WatchFlags::MOVED_FROM)
    .union(WatchFlags::MOVED_TO)
    .union(WatchFlags::ONLYDIR);

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
            // A file is watched through its directory (an editor that
            // saves by renaming a new file over it replaces the inode), a
            // directory also there (it may be removed and made again).
            let parent = path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| path.clone());
            if let Some(name) = path.file_name() {
                watcher.add(&parent, Some(name.to_owned()))?;
            }
            if path.is_dir() {
                watcher.add_tree(&path)?;
            }
        }
        Ok(watcher)
    }

    /// Watches `dir`, for `only` that entry of it (`None`: all); a
    /// directory watched twice counts what either asked for.
    fn add(&mut self, dir: &Path, only: Option<std::ffi::OsString>) -> Result<(), Failure> {
        if self.watches.len() >= MOST_DIRECTORIES {
            return Err(Failure::new(format!(
                "--watch: more than {MOST_DIRECTORIES} directories; watch fewer paths"
            )));
        }
        let watch = inotify::add_watch(&self.fd, dir, FLAGS)
            .map_err(|err| Failure::new(format!("cannot watch {}: {err}", dir.display())))?;
        let entry = self.watches.entry(watch).or_insert_with(|| Watch {
            dir: dir.to_path_buf(),
            only: Some(Vec::new()),
        });
        match (&mut entry.only, only) {
            (None, _) => {}
            (slot @ Some(_), None) => *slot = None,
            (Some(names), Some(name)) => {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        Ok(())
    }

    fn add_tree(&mut self, root: &Path) -> Result<(), Failure> {
        let mut pending = vec![root.to_path_buf()];
        while let Some(dir) = pending.pop() {
            self.add(&dir, None)?;
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                // Not followed: a link to a directory (a loop, say) is
                // an entry, not a tree.
                let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
                if is_dir && !ignored(&entry.file_name()) {
                    pending.push(entry.path());
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
        let mut gone = Vec::new();
        while let Ok(event) = reader.next() {
            if event.events().contains(ReadFlags::IGNORED) {
                // The directory went: so does its watch.
                gone.push(event.wd());
                continue;
            }
            let Some(watch) = self.watches.get(&event.wd()) else {
                continue;
            };
            let path = match event.file_name() {
                Some(name) if !name.to_bytes().is_empty() => {
                    let name = OsStr::from_bytes(name.to_bytes());
                    let counts = watch
                        .only
                        .as_ref()
                        .is_none_or(|only| only.iter().any(|entry| entry == name));
                    if ignored(name) || !counts {
                        continue;
                    }
                    watch.dir.join(name)
                }
                _ => watch.dir.clone(),
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
        for watch in gone {
            self.watches.remove(&watch);
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
        // A removed directory's watch is forgotten, and one made again is
        // watched again.
        let before = watcher.watches.len();
        std::fs::remove_dir_all(dir.join("src")).unwrap();
        assert!(watcher.next_change().is_some());
        assert!(
            watcher.watches.len() < before,
            "{} >= {before}",
            watcher.watches.len()
        );
        std::fs::create_dir_all(dir.join("src/again")).unwrap();
        assert!(watcher.next_change().is_some());
        std::fs::write(dir.join("src/again/file"), "x").unwrap();
        assert!(watcher.next_change().unwrap().ends_with("src/again/file"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_watched_file_replaced_by_a_rename_is_still_watched() {
        let dir = std::env::temp_dir().join(format!("lichtara-watch-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.toml"), "a").unwrap();
        std::fs::write(dir.join("other"), "a").unwrap();
        let mut watcher = Watcher::new(&dir, &[PathBuf::from("app.toml")]).unwrap();
        for round in 0..3 {
            // An editor's save: a new file renamed over the old one.
            std::fs::write(dir.join("app.toml.tmp"), format!("{round}")).unwrap();
            std::fs::rename(dir.join("app.toml.tmp"), dir.join("app.toml")).unwrap();
            let changed = watcher.next_change().expect("a change");
            assert!(changed.ends_with("app.toml"), "{changed:?}");
        }
        // Its neighbours do not count.
        std::fs::write(dir.join("other"), "b").unwrap();
        std::fs::write(dir.join("app.toml"), "c").unwrap();
        assert!(watcher.next_change().unwrap().ends_with("app.toml"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
