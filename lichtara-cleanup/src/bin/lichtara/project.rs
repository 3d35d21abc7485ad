//! The project: its directory, the state kept in `.lichtara/`, its settings
//! in `Lichtara.toml`, and the marker every process it starts carries.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Failure;
use crate::state::StateDir;

/// The environment variable that marks every process a service started,
/// inherited by all its descendants: `<project id>/<name>/<instance>`.
pub(crate) const MARKER_VAR: &str = "LICHTARA_MARKER";

/// How long `stop` waits after SIGTERM before SIGKILL, by default.
pub(crate) const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long `start` watches a new process for an immediate death.
pub(crate) const DEFAULT_START_GRACE: Duration = Duration::from_millis(300);

/// The size at which a log is rotated, by default.
pub(crate) const DEFAULT_LOG_MAX: u64 = 10 << 20;

/// How many rotated logs are kept, by default.
pub(crate) const DEFAULT_LOG_KEEP: u32 = 3;

/// Settings from `Lichtara.toml`, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// The command `start` and `run` use when none is given.
    pub(crate) command: Option<Vec<String>>,
    /// The service name when `--name` is not given.
    pub(crate) name: Option<String>,
    /// How long `stop` waits before SIGKILL: `"10s"`.
    pub(crate) stop_timeout: Option<String>,
    /// How long `start` watches for an immediate death: `"300ms"`.
    pub(crate) start_grace: Option<String>,
    /// The signal `stop` sends first: `"SIGTERM"` (default), `"SIGINT"`,
    /// `"SIGQUIT"`, `"SIGHUP"`, `"SIGUSR1"`, `"SIGUSR2"`.
    pub(crate) stop_signal: Option<String>,
    /// The size at which the supervisor rotates `<name>.log`: `"10MiB"`.
    pub(crate) log_max: Option<String>,
    /// How many rotated logs (`<name>.log.1` …) are kept: `3`.
    pub(crate) log_keep: Option<u32>,
    /// Extra environment for the command.
    #[serde(default)]
    pub(crate) env: BTreeMap<String, String>,
    /// Listeners the supervisor binds and holds, passed to the service by
    /// socket activation: `{ http = "127.0.0.1:8000" }`.
    #[serde(default)]
    pub(crate) listen: BTreeMap<String, String>,
    /// When the service counts as started: `"none"` (its start grace
    /// passed), `"notify"` (it sent `READY=1`), or `{ port = "ADDR" }`.
    pub(crate) ready: Option<ReadySetting>,
    /// How long a start or a reload waits for readiness: `"30s"`.
    pub(crate) ready_timeout: Option<String>,
}

/// `ready` as written in `Lichtara.toml`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum ReadySetting {
    Word(String),
    Port { port: String },
}

/// When a started service counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// Once its start grace has passed, alive.
    None,
    /// Once a process of it sent `READY=1` on its `NOTIFY_SOCKET`.
    Notify,
    /// Once this address accepts a connection.
    Port(std::net::SocketAddr),
}

impl Ready {
    /// `none`, `notify` or `port=ADDR` (the command line's form).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text.trim() {
            "none" => Ok(Self::None),
            "notify" => Ok(Self::Notify),
            "port" => Err("`port` needs the address to try: port=127.0.0.1:8000".into()),
            other => match other.strip_prefix("port=") {
                Some(addr) => addr
                    .trim()
                    .parse()
                    .map(Self::Port)
                    .map_err(|_| format!("{addr:?} is not IP:PORT")),
                None => Err(format!(
                    "{other:?} is not a readiness: use none, notify or port=ADDR"
                )),
            },
        }
    }

    /// The command line's form.
    pub(crate) fn arg(self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Notify => "notify".into(),
            Self::Port(addr) => format!("port={addr}"),
        }
    }
}

/// How long a start or reload waits for readiness, by default.
pub(crate) const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One project directory.
#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) dir: PathBuf,
    pub(crate) settings: Settings,
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
        let settings = read_settings(&dir.join("Lichtara.toml"))?;
        let id = project_id(&dir, meta.dev(), meta.ino());
        let project = Self { dir, settings, id };
        // Every setting is checked before anything is spawned or signalled.
        project.stop_timeout(None)?;
        project.start_grace()?;
        project.stop_signal()?;
        project.log_limits()?;
        project.listeners(&[])?;
        project.ready(None)?;
        project.ready_timeout(None)?;
        Ok(project)
    }

    /// The service name: `--name`, else `Lichtara.toml`, else `server`.
    pub(crate) fn name(&self, given: Option<&str>) -> Result<String, Failure> {
        let name = given
            .or(self.settings.name.as_deref())
            .unwrap_or("server")
            .to_owned();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !name.starts_with('.');
        if valid {
            Ok(name)
        } else {
            Err(Failure::new(format!(
                "invalid service name {name:?}: use letters, digits, '-', '_' or '.' (at most 64, not starting with '.')"
            )))
        }
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

    /// The signal `stop` sends first.
    pub(crate) fn stop_signal(&self) -> Result<rustix::process::Signal, Failure> {
        use rustix::process::Signal;
        let Some(text) = &self.settings.stop_signal else {
            return Ok(Signal::TERM);
        };
        let name = text.trim().to_ascii_uppercase();
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        Ok(match name {
            "TERM" => Signal::TERM,
            "INT" => Signal::INT,
            "QUIT" => Signal::QUIT,
            "HUP" => Signal::HUP,
            "USR1" => Signal::USR1,
            "USR2" => Signal::USR2,
            _ => {
                return Err(Failure::new(format!(
                    "Lichtara.toml: `stop_signal = {text:?}` is not a stop signal; use one of \"SIGTERM\", \"SIGINT\", \"SIGQUIT\", \"SIGHUP\", \"SIGUSR1\", \"SIGUSR2\" (SIGKILL follows after stop_timeout anyway)"
                )));
            }
        })
    }

    /// `(log_max in bytes, log_keep)`: from 1 KiB to 1 TiB, and at most
    /// 100 rotated files.
    pub(crate) fn log_limits(&self) -> Result<(u64, u32), Failure> {
        let max = match &self.settings.log_max {
            None => DEFAULT_LOG_MAX,
            Some(text) => parse_size(text).filter(|size| (1 << 10..=1 << 40).contains(size)).ok_or_else(|| {
                Failure::new(format!(
                    "Lichtara.toml: `log_max = {text:?}` is not a size from 1KiB to 1TiB; write it like \"10MiB\""
                ))
            })?,
        };
        let keep = self.settings.log_keep.unwrap_or(DEFAULT_LOG_KEEP);
        if keep > 100 {
            return Err(Failure::new(format!(
                "Lichtara.toml: `log_keep = {keep}` keeps too many files; at most 100"
            )));
        }
        Ok((max, keep))
    }

    pub(crate) fn stop_timeout(&self, given: Option<Duration>) -> Result<Duration, Failure> {
        match (given, &self.settings.stop_timeout) {
            (Some(timeout), _) => Ok(timeout),
            (None, Some(text)) => parse_duration("stop_timeout", text),
            (None, None) => Ok(DEFAULT_STOP_TIMEOUT),
        }
    }

    pub(crate) fn start_grace(&self) -> Result<Duration, Failure> {
        match &self.settings.start_grace {
            Some(text) => parse_duration("start_grace", text),
            None => Ok(DEFAULT_START_GRACE),
        }
    }

    /// The declared listeners: `--listen` arguments when any is given
    /// (they replace the file's), else `listen` in Lichtara.toml.
    pub(crate) fn listeners(
        &self,
        given: &[String],
    ) -> Result<Vec<crate::listeners::Declared>, Failure> {
        use crate::listeners::Declared;
        if !given.is_empty() {
            return Declared::parse_all(given);
        }
        self.settings
            .listen
            .iter()
            .map(|(name, address)| {
                Declared::parse(name, address)
                    .map_err(|why| Failure::new(format!("Lichtara.toml: `listen`: {why}")))
            })
            .collect()
    }

    /// The readiness: `--ready` if given, else `ready` in Lichtara.toml,
    /// else `none`.
    pub(crate) fn ready(&self, given: Option<&str>) -> Result<Ready, Failure> {
        if let Some(given) = given {
            return Ready::parse(given).map_err(|why| Failure::new(format!("--ready: {why}")));
        }
        let text = match &self.settings.ready {
            None => return Ok(Ready::None),
            Some(ReadySetting::Word(word)) => word.clone(),
            Some(ReadySetting::Port { port }) => format!("port={port}"),
        };
        Ready::parse(&text).map_err(|why| Failure::new(format!("Lichtara.toml: `ready`: {why}")))
    }

    pub(crate) fn ready_timeout(&self, given: Option<Duration>) -> Result<Duration, Failure> {
        match (given, &self.settings.ready_timeout) {
            (Some(timeout), _) => Ok(timeout),
            (None, Some(text)) => parse_duration("ready_timeout", text),
            (None, None) => Ok(DEFAULT_READY_TIMEOUT),
        }
    }

    /// Lichtara.toml's command, if it is `name`'s: the file describes one
    /// service, its `name` (else `server`).
    pub(crate) fn command_of(&self, name: &str) -> Option<Vec<String>> {
        let own = self.settings.name.as_deref().unwrap_or("server");
        self.settings
            .command
            .clone()
            .filter(|command| !command.is_empty() && own == name)
    }

    /// The command to run: given on the command line, else from settings.
    pub(crate) fn command(&self, given: &[String]) -> Result<Vec<String>, Failure> {
        if !given.is_empty() {
            return Ok(given.to_vec());
        }
        match &self.settings.command {
            Some(command) if !command.is_empty() => Ok(command.clone()),
            _ => Err(Failure::new(
                "no command: give one after `--` (`lichtara start -- python3 -m http.server`) or set `command = [...]` in Lichtara.toml",
            )),
        }
    }

    /// The marker prefix of every process of this project.
    pub(crate) fn marker_prefix(&self) -> String {
        format!("{}/", self.id)
    }
}

fn parse_duration(key: &str, text: &str) -> Result<Duration, Failure> {
    crate::cli::duration_arg(text).map_err(|err| {
        Failure::new(format!(
            "Lichtara.toml: `{key} = {text:?}` is not a duration ({err}); write it like \"10s\""
        ))
    })
}

/// Parses a size: a whole number and an optional unit, `B`, `KiB`, `MiB`,
/// `GiB`, `TiB` (or `K`, `KB`, `M`, `MB`…, the same binary multiples).
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let shift = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

/// The most `Lichtara.toml` may hold: settings, not data.
const SETTINGS_MAX: u64 = 1 << 20;

fn read_settings(path: &Path) -> Result<Settings, Failure> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // Never blocks on a FIFO; a link to something that is not a regular
    // file (/dev/zero) is refused, a large file read only so far.
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Settings::default()),
        Err(err) => return Err(Failure::new(format!("{}: {err}", path.display()))),
    };
    let meta = file
        .metadata()
        .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
    if !meta.is_file() {
        return Err(Failure::new(format!(
            "{} is not a regular file",
            path.display()
        )));
    }
    let mut text = String::new();
    file.take(SETTINGS_MAX + 1)
        .read_to_string(&mut text)
        .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
    if text.len() as u64 > SETTINGS_MAX {
        return Err(Failure::new(format!(
            "{} is larger than 1 MiB; it holds settings, not data",
            path.display()
        )));
    }
    toml::from_str(&text).map_err(|err| Failure::new(format!("{}: {err}", path.display())))
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

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_size(" 4 KiB "), Some(4096));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("10 parsecs"), None);
        assert_eq!(parse_size("-1M"), None);
        assert_eq!(parse_size("99999999999999999999T"), None);
    }

    #[test]
    fn settings_refuse_unknown_keys() {
        let err = toml::from_str::<Settings>("comand = [\"x\"]").unwrap_err();
        assert!(err.to_string().contains("comand"), "{err}");
        let settings: Settings =
            toml::from_str("command = [\"python3\", \"-m\", \"http.server\"]\nstop_timeout = \"3s\"\n[env]\nPORT = \"8000\"\n").unwrap();
        assert_eq!(settings.command.unwrap().len(), 3);
        assert_eq!(settings.env["PORT"], "8000");
    }

    #[test]
    fn readiness_parses_in_both_forms() {
        let settings: Settings = toml::from_str(
            "ready = { port = \"127.0.0.1:8000\" }\nlisten = { http = \"127.0.0.1:8001\" }\n",
        )
        .unwrap();
        assert!(matches!(settings.ready, Some(ReadySetting::Port { .. })));
        assert_eq!(Ready::parse("notify"), Ok(Ready::Notify));
        assert_eq!(
            Ready::parse("port=127.0.0.1:8000"),
            Ok(Ready::Port("127.0.0.1:8000".parse().unwrap()))
        );
        assert!(
            Ready::parse("port")
                .unwrap_err()
                .contains("needs the address")
        );
        assert!(
            Ready::parse("sometimes")
                .unwrap_err()
                .contains("none, notify")
        );
        assert_eq!(Ready::parse(&Ready::Notify.arg()), Ok(Ready::Notify));
    }
}
