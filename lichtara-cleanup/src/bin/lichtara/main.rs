//! `lichtara`: starts, stops and watches a project's server processes, and
//! removes the orphans they leave — without ever signalling a process it
//! cannot prove is the project's.
//!
//! ```text
//! lichtara start -- python3 -m http.server 8000
//! lichtara status
//! lichtara logs -f
//! lichtara stop
//! lichtara cleanup --dry-run
//! lichtara run -- ./my-server      # foreground, for containers
//! ```
//!
//! State lives in `.lichtara/` in the project directory (the current one,
//! or `--dir`); settings in an optional `Lichtara.toml`. Linux only.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

// First: its `say!` and `note!` serve every module below.
#[macro_use]
mod output;

#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod commands;
#[cfg(target_os = "linux")]
mod containment;
#[cfg(target_os = "linux")]
mod ownership;
#[cfg(target_os = "linux")]
mod pidfile;
#[cfg(target_os = "linux")]
mod procfs;
#[cfg(target_os = "linux")]
mod project;
#[cfg(target_os = "linux")]
mod protocol;
#[cfg(target_os = "linux")]
mod record;
#[cfg(target_os = "linux")]
mod state;
#[cfg(target_os = "linux")]
mod supervisor;
#[cfg(target_os = "linux")]
mod terminate;

/// Manage the server processes of a project, safely.
#[derive(Debug, Parser)]
#[command(name = "lichtara", version, about, long_about = None)]
struct Cli {
    /// The project directory (default: the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// `--name`, shared by the commands that act on one service.
#[derive(Debug, Args)]
struct NameArg {
    /// The service name (default: `name` in Lichtara.toml, else `server`).
    #[arg(long, short = 'N')]
    name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the command under a supervisor of its own, detached, its
    /// output in `.lichtara/<name>.log` (capped and rotated).
    Start {
        #[command(flatten)]
        name: NameArg,
        /// The command (default: `command` in Lichtara.toml).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Stop the service: its stop signal (SIGTERM) to each of its
    /// processes, SIGKILL (or `cgroup.kill`) after the timeout.
    Stop {
        #[command(flatten)]
        name: NameArg,
        /// How long to wait after SIGTERM (default: `stop_timeout`, else 10s).
        #[arg(long, value_parser = duration_arg)]
        timeout: Option<Duration>,
    },
    /// Show whether the service runs. Exit (LSB): 0 running, 1 dead with a
    /// PID file, 3 not running, 4 unknown (an error, or a PID file whose
    /// process is not provably the project's).
    Status {
        #[command(flatten)]
        name: NameArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop, then start again.
    Restart {
        #[command(flatten)]
        name: NameArg,
        /// How long to wait after SIGTERM.
        #[arg(long, value_parser = duration_arg)]
        timeout: Option<Duration>,
        /// The command (default: Lichtara.toml's, else the one recorded).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Print the end of the service's log.
    Logs {
        #[command(flatten)]
        name: NameArg,
        /// How many lines.
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: usize,
        /// Keep printing what is appended, until Ctrl-C.
        #[arg(short = 'f', long)]
        follow: bool,
    },
    /// Find processes of this project that outlived their service, and
    /// end them.
    Cleanup {
        /// Only list them.
        #[arg(long)]
        dry_run: bool,
        /// Do not ask before ending them.
        #[arg(long, short = 'y')]
        yes: bool,
        /// How long to wait after SIGTERM before SIGKILL.
        #[arg(long, value_parser = duration_arg, default_value = "5s")]
        timeout: Duration,
    },
    /// Run the command in the foreground as its supervisor: forward
    /// signals, reap zombies, leave no descendant behind.
    Run {
        #[command(flatten)]
        name: NameArg,
        /// How long the command gets after a forwarded signal before SIGKILL.
        #[arg(long, value_parser = duration_arg)]
        timeout: Option<Duration>,
        /// The command (default: `command` in Lichtara.toml).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Internal: the supervisor that `start` launches for one service.
    #[command(name = "__supervise", hide = true)]
    Supervise {
        #[arg(long)]
        name: String,
        /// The pipe to report to `start` on.
        #[arg(long)]
        report_fd: i32,
        /// The name's lock, taken by `start`.
        #[arg(long)]
        lock_fd: i32,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// The exit codes of every command but `status` (which has the LSB ones),
/// in one place. clap's usage errors are 2.
pub(crate) mod exit {
    /// The command failed: bad settings, a service that would not start…
    pub(crate) const FAILURE: u8 = 1;
    /// A process was not provably the project's: nothing was signalled.
    pub(crate) const REFUSED: u8 = 5;
    /// `status`: running.
    pub(crate) const STATUS_RUNNING: u8 = 0;
    /// `status`: dead, with a PID file left behind.
    pub(crate) const STATUS_DEAD: u8 = 1;
    /// `status`: not running.
    pub(crate) const STATUS_STOPPED: u8 = 3;
    /// `status`: unknown (an error, or a record that is not provably ours).
    pub(crate) const STATUS_UNKNOWN: u8 = 4;
}

/// An error that ends the command: one line, and an exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::FAILURE,
        }
    }

    /// A process was not provably the project's; nothing was signalled.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: exit::REFUSED,
        }
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

/// The longest duration an option or setting takes: a longer one is a
/// typo (`500000000000years`), refused before anything is spawned.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// Parses a duration option or setting (`"10s"`, `"1m 30s"`), at most
/// [`MAX_DURATION`].
pub(crate) fn duration_arg(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim()).map_err(|err| err.to_string())?;
    if duration > MAX_DURATION {
        return Err(format!(
            "at most {}",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `status` reports every failure in its own terms: LSB code 4, and a
    // JSON object with `--json`.
    let status_json = match &cli.command {
        Command::Status { json, .. } => Some(*json),
        _ => None,
    };
    let status_name = match &cli.command {
        Command::Status { name, .. } => name.name.clone(),
        _ => None,
    };
    match dispatch(cli) {
        Ok(code) if output::stdout_failed() => {
            note!("cannot write to stdout: what this command printed is lost");
            match status_json {
                Some(_) => ExitCode::from(exit::STATUS_UNKNOWN),
                None if code == ExitCode::SUCCESS => ExitCode::from(exit::FAILURE),
                None => code,
            }
        }
        Ok(code) => code,
        Err(failure) => {
            if status_json == Some(true) {
                say!(
                    "{}",
                    serde_json::json!({"name": status_name, "state": "unknown", "error": failure.message})
                );
            } else {
                note!("{}", failure.message);
            }
            match status_json {
                Some(_) => ExitCode::from(exit::STATUS_UNKNOWN),
                None => ExitCode::from(failure.code),
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let project = project::Project::open(cli.dir.as_deref())?;
    match cli.command {
        Command::Start { name, command } => {
            commands::start::run(&project, name.name.as_deref(), &command)
        }
        Command::Stop { name, timeout } => {
            commands::stop::run(&project, name.name.as_deref(), timeout)
        }
        Command::Status { name, json } => {
            commands::status::run(&project, name.name.as_deref(), json)
        }
        Command::Restart {
            name,
            timeout,
            command,
        } => commands::restart::run(&project, name.name.as_deref(), timeout, &command),
        Command::Logs {
            name,
            lines,
            follow,
        } => commands::logs::run(&project, name.name.as_deref(), lines, follow),
        Command::Cleanup {
            dry_run,
            yes,
            timeout,
        } => commands::cleanup::run(&project, dry_run, yes, timeout),
        Command::Run {
            name,
            timeout,
            command,
        } => commands::run::run(&project, name.name.as_deref(), timeout, &command),
        Command::Supervise {
            name,
            report_fd,
            lock_fd,
            command,
        } => Ok(supervisor::run(
            &project, &name, report_fd, lock_fd, &command,
        )),
    }
}

#[cfg(not(target_os = "linux"))]
fn dispatch(_cli: Cli) -> Result<ExitCode, Failure> {
    Err(Failure::new(
        "the process manager needs Linux (/proc, pidfd, process groups); this platform is not supported",
    ))
}
