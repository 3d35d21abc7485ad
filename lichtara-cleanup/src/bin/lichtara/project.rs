//! The project: its directory, the state kept in `.lichtara/`, its settings
//! (`config`), and the marker every process it starts carries.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Failure;
use crate::config::{Config, DEFAULT_NAME, ServiceConfig, valid_name};
use crate::state::StateDir;

/// The environment variable that marks every process a service started,
/// inherited by all its descendants: `<project id>/<name>/<instance>`.
pub(crate) const MARKER_VAR: &str = "LICHTARA_MARKER";

/// One project directory.
#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) dir: PathBuf,
    /// `Lichtara.toml` (or the `Procfile`), checked.
    pub(crate) config: Config,
    /// Derived from the directory itself (device, inode, canonical path):
    /// stable per project, and another one for a copy of it.
    pub(crate) id: String,
}

impl Project {
    /// Opens the project at `dir` (the current directory by default).
    pub(crate) fn open(dir: Option<&Path>) -> Result<Self, Failure> {
        let dir = match dir {
            Some(dir) => dir.to_path_buf(),
            None => std::env::current_dir()
                .map_err(|err| Failure::new(format!("cannot read the current directory: {err}")))?,
        };
        let dir = fs::canonicalize(&dir)
            .map_err(|err| Failure::new(format!("project directory {}: {err}", dir.display())))?;
        let meta = fs::metadata(&dir)
            .map_err(|err| Failure::new(format!("project directory {}: {err}", dir.display())))?;
        // Every setting is checked before anything is spawned or signalled.
        let config = Config::read(&dir)?;
        let id = project_id(&dir, meta.dev(), meta.ino());
        let project = Self { dir, config, id };
        Ok(project)
    }

    /// The service name: `--name`, else `name` in Lichtara.toml, else
    /// `server` (which a project of several services must declare, or the
    /// name must be given).
    pub(crate) fn name(&self, given: Option<&str>) -> Result<String, Failure> {
        let name = match given.or(self.config.default_name()) {
            Some(name) => name.to_owned(),
            None => {
                let names = self.config.names();
                if self.config.has_services() && !names.iter().any(|n| n == DEFAULT_NAME) {
                    return Err(Failure::new(format!(
                        "this project declares the services {}: name one with --name (`lichtara ps` lists them, `lichtara up` starts them all)",
                        names.join(", ")
                    )));
                }
                DEFAULT_NAME.to_owned()
            }
        };
        valid_name(&name).map_err(Failure::new)?;
        Ok(name)
    }

    /// The settings of service `name`.
    pub(crate) fn service(&self, name: &str) -> ServiceConfig {
        self.config.service(name)
    }

    /// `.lichtara/`, created private to the user if missing; refused when it
    /// is a symlink, belongs to someone else or is writable by others.
    pub(crate) fn state_dir(&self) -> Result<StateDir, Failure> {
        StateDir::open(self.dir.join(".lichtara"), true)?
            .ok_or_else(|| Failure::new("the state folder vanished as it was made"))
    }

    /// The state directory if it exists (commands that only read).
    pub(crate) fn existing_state_dir(&self) -> Result<Option<StateDir>, Failure> {
        StateDir::open(self.dir.join(".lichtara"), false)
    }

    /// The marker prefix of every process of this project.
    pub(crate) fn marker_prefix(&self) -> String {
        format!("{}/", self.id)
    }
}

/// FNV-1a of the directory's device, inode and canonical path: short,
/// stable, the same for every process started from this project, and
/// another for a copy of the directory (`cp -a` makes a new inode) or a
/// directory later created at the same path.
fn project_id(dir: &Path, dev: u64, ino: u64) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = dev
        .to_le_bytes()
        .into_iter()
        .chain(ino.to_le_bytes())
        .chain(dir.as_os_str().as_bytes().iter().copied());
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_differ_by_directory_and_are_stable() {
        let a = project_id(Path::new("/srv/a"), 1, 2);
        assert_eq!(a, project_id(Path::new("/srv/a"), 1, 2));
        assert_ne!(a, project_id(Path::new("/srv/b"), 1, 2));
        assert_ne!(a, project_id(Path::new("/srv/a"), 1, 3), "a copy");
        assert_eq!(a.len(), 16);
    }
}
