//! The state folder `.lichtara/`, held by a descriptor.
//!
//! The folder is opened once, without following a symlink, and checked on
//! that descriptor (a directory, this user's, writable by nobody else);
//! every file in it is then opened, renamed and removed relative to the
//! descriptor, never by path: whoever can write the project directory
//! cannot swap `.lichtara` for a link to another folder between the check
//! and the use. Files must be regular (a FIFO or device is refused, never
//! waited on), this user's, and have one link (a hard link planted in the
//! folder would aim the service's output at another file).

use std::fs::File;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, Mode, OFlags};

use crate::Failure;

/// The open state folder.
#[derive(Debug, Clone)]
pub(crate) struct StateDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

/// One file of the state folder: its name there, and its path for
/// messages.
#[derive(Debug, Clone)]
pub(crate) struct StateFile {
    dir: Arc<OwnedFd>,
    name: String,
    path: PathBuf,
}

/// How a state file is opened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Access {
    /// To read; `None` when it does not exist.
    Read,
    /// To read a log: as `Read`, but two links are allowed, as a rotation
    /// gives the current log its number before the new one takes its name.
    ReadLog,
    /// To append to, created 0600 if missing (the log).
    Append,
    /// To lock, created 0600 if missing.
    Lock,
}

impl StateDir {
    /// Opens `path` (`<project>/.lichtara`), creating it 0700 when
    /// `create`; `None` when it does not exist and `create` is false.
    pub(crate) fn open(path: PathBuf, create: bool) -> Result<Option<Self>, Failure> {
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(&path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) if create => {
                match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(err) => {
                        return Err(Failure::new(format!(
                            "cannot create {}: {err}",
                            path.display()
                        )));
                    }
                }
                rustix::fs::open(&path, flags, Mode::empty())
                    .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?
            }
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
                if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                return Err(Failure::new(format!(
                    "{} is a symlink; refusing to use it",
                    path.display()
                )));
            }
            Err(rustix::io::Errno::NOTDIR) => {
                return Err(Failure::new(format!(
                    "{} is not a directory",
                    path.display()
                )));
            }
            Err(err) => return Err(Failure::new(format!("{}: {err}", path.display()))),
        };
        let stat = rustix::fs::fstat(&fd)
            .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
        if stat.st_uid != rustix::process::getuid().as_raw() {
            return Err(Failure::new(format!(
                "{} belongs to another user; refusing to use it",
                path.display()
            )));
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            return Err(Failure::new(format!(
                "{} is writable by other users (mode {mode:o}): they could plant or move its files; fix it with `chmod 700 {}`",
                path.display(),
                path.display()
            )));
        }
        Ok(Some(Self {
            fd: Arc::new(fd),
            path,
        }))
    }

    /// The file `name` in the folder.
    pub(crate) fn file(&self, name: &str) -> StateFile {
        StateFile {
            dir: self.fd.clone(),
            name: name.to_owned(),
            path: self.path.join(name),
        }
    }

    /// A path to `name` through the folder's descriptor
    /// (`/proc/self/fd/N/name`), for the calls that take a path only
    /// (`bind`, `connect`): short whatever the folder's own path is (a
    /// socket's is limited to 107 bytes), and never through a folder
    /// swapped after the checks.
    pub(crate) fn fd_path(&self, name: &str) -> PathBuf {
        use std::os::fd::AsRawFd;
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd()))
    }

    /// Renames `from` to `to` in the folder; `false` when `from` does not
    /// exist.
    pub(crate) fn rename(&self, from: &str, to: &str) -> std::io::Result<bool> {
        match rustix::fs::renameat(&*self.fd, from, &*self.fd, to) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Gives the file `from` a second name, `to`, in the folder.
    pub(crate) fn link(&self, from: &str, to: &str) -> std::io::Result<()> {
        rustix::fs::linkat(&*self.fd, from, &*self.fd, to, AtFlags::empty())?;
        Ok(())
    }

    /// Whether `name` is a socket (a supervisor's control socket).
    pub(crate) fn is_socket(&self, name: &str) -> bool {
        rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|stat| {
            rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Socket
        })
    }

    /// The names of the folder's entries (read through its descriptor).
    pub(crate) fn names(&self) -> Result<Vec<String>, Failure> {
        let fd = rustix::fs::openat(
            &*self.fd,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|err| Failure::new(format!("{}: {err}", self.path.display())))?;
        let dir = rustix::fs::Dir::read_from(&fd)
            .map_err(|err| Failure::new(format!("{}: {err}", self.path.display())))?;
        Ok(dir
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "." && name != "..")
            .collect())
    }
}

impl StateFile {
    /// The file's path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file relative to the folder's descriptor, never following
    /// a symlink, never blocking on a FIFO; refused unless it is a regular
    /// file of this user with one link. `None` when it does not exist and
    /// `access` does not create it. `verb` says what a refusal would have
    /// done.
    pub(crate) fn open(&self, access: Access, verb: &str) -> Result<Option<File>, Failure> {
        let base = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let flags = match access {
            Access::Read | Access::ReadLog => base | OFlags::RDONLY,
            Access::Append => base | OFlags::WRONLY | OFlags::APPEND | OFlags::CREATE,
            Access::Lock => base | OFlags::RDWR | OFlags::CREATE,
        };
        let fd =
            match rustix::fs::openat(&*self.dir, &*self.name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT) => return Ok(None),
                Err(rustix::io::Errno::LOOP) => {
                    return Err(Failure::new(format!(
                        "{} is a symlink; refusing to {verb} it",
                        self.path.display()
                    )));
                }
                // O_NONBLOCK on a FIFO opened to write with no reader.
                Err(rustix::io::Errno::NXIO) => return Err(self.not_regular(verb)),
                Err(err) => return Err(Failure::new(format!("{}: {err}", self.path.display()))),
            };
        let file = File::from(fd);
        let meta = file
            .metadata()
            .map_err(|err| Failure::new(format!("{}: {err}", self.path.display())))?;
        if !meta.is_file() {
            return Err(self.not_regular(verb));
        }
        if meta.uid() != rustix::process::getuid().as_raw() {
            return Err(Failure::new(format!(
                "{} belongs to another user; refusing to {verb} it",
                self.path.display()
            )));
        }
        if meta.nlink() == 0 {
            // Removed between the open and this look: as good as absent.
            return Ok(None);
        }
        let links = if matches!(access, Access::ReadLog) {
            2
        } else {
            1
        };
        if meta.nlink() > links {
            return Err(Failure::new(format!(
                "{} has {} hard links (another file shares it); refusing to {verb} it",
                self.path.display(),
                meta.nlink()
            )));
        }
        Ok(Some(file))
    }

    fn not_regular(&self, verb: &str) -> Failure {
        Failure::new(format!(
            "{} is not a regular file (a FIFO, device or directory); refusing to {verb} it",
            self.path.display()
        ))
    }

    /// Creates a new private file beside this one, named `name`: for a
    /// write that is then renamed over this one.
    pub(crate) fn create_new(&self, name: &str) -> std::io::Result<File> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&*self.dir, name, flags, Mode::from_raw_mode(0o600))?;
        Ok(File::from(fd))
    }

    /// Renames `from` (in the same folder) over this file.
    pub(crate) fn replace_with(&self, from: &str) -> std::io::Result<()> {
        rustix::fs::renameat(&*self.dir, from, &*self.dir, &*self.name)?;
        Ok(())
    }

    /// Removes `name` from the folder (a file, not a directory).
    pub(crate) fn unlink_named(&self, name: &str) -> std::io::Result<()> {
        match rustix::fs::unlinkat(&*self.dir, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(err) if std::io::Error::from(err).kind() == ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Removes this file.
    pub(crate) fn unlink(&self) -> std::io::Result<()> {
        self.unlink_named(&self.name.clone())
    }
}
