//! The command line: one `Args` struct per subcommand, parsed by clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Manage the server processes of a project, safely.
#[derive(Debug, Parser)]
#[command(name = "lichtara", version, about, long_about = None)]
pub(crate) struct Cli {
    /// The project directory (default: the current directory).
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// `--name`, shared by the commands that act on one service.
#[derive(Debug, Args)]
pub(crate) struct NameArg {
    /// The service name (default: `name` in Lichtara.toml, else `server`).
    #[arg(long, short = 'N')]
    pub(crate) name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Start the command under a supervisor of its own, detached, its
    /// output in `.lichtara/<name>.log` (capped and rotated).
    Start(StartArgs),
    /// Stop the service: its stop signal (SIGTERM) to each of its
    /// processes, SIGKILL (or `cgroup.kill`) after the timeout.
    Stop(StopArgs),
    /// Show whether the service runs. Exit (LSB): 0 running, 1 dead with a
    /// PID file, 3 not running, 4 unknown (an error, or a PID file whose
    /// process is not provably the project's).
    Status(StatusArgs),
    /// Stop, then start again. With declared listeners the supervisor
    /// stays and holds them: connections wait in the backlog meanwhile.
    Restart(RestartArgs),
    /// Replace the service by a new generation with no connection refused:
    /// started beside the old one on the held listeners, the old one
    /// stopped once the new one is ready; if it is not, the old one keeps
    /// serving.
    Reload(ReloadArgs),
    /// Print the end of the service's log.
    Logs(LogsArgs),
    /// Find processes of this project that outlived their service, and
    /// end them.
    Cleanup(CleanupArgs),
    /// Run the command in the foreground as its supervisor: forward
    /// signals, reap zombies, leave no descendant behind.
    Run(RunArgs),
    /// Start services (every declared one by default) and what they
    /// depend on, in dependency order, each ready before its dependents.
    Up(UpArgs),
    /// Stop services (every one by default) and what depends on them,
    /// dependents first.
    Down(DownArgs),
    /// List every service of the project: state, PID, uptime, restarts,
    /// memory, ports, readiness, containment.
    Ps(PsArgs),
    /// Print (or with --install write) the systemd unit that runs the
    /// service under `lichtara run`, to survive a reboot; one per service
    /// of a project of several without NAME.
    Unit(UnitArgs),
    /// Internal: the supervisor that `start` launches for one service.
    #[command(name = "__supervise", hide = true)]
    Supervise(SuperviseArgs),
}

/// How a service is started: its listeners and its readiness, shared by
/// `start`, `restart` and `run`.
#[derive(Debug, Args, Default)]
pub(crate) struct ServeArgs {
    /// A listener the supervisor binds and holds for the service, passed
    /// by socket activation (LISTEN_FDS): NAME=IP:PORT or NAME=unix:PATH;
    /// repeatable, and replaces `listen` in Lichtara.toml.
    #[arg(long = "listen", value_name = "NAME=ADDR")]
    pub(crate) listen: Vec<String>,
    /// When the service counts as started: none (its start grace passed),
    /// notify (it sent READY=1 on NOTIFY_SOCKET) or port=ADDR (ADDR
    /// accepts a connection). Default: `ready` in Lichtara.toml, else none.
    #[arg(long, value_name = "HOW")]
    pub(crate) ready: Option<String>,
    /// How long to wait for readiness (default: `ready_timeout`, else 30s).
    #[arg(long, value_parser = duration_arg)]
    pub(crate) ready_timeout: Option<Duration>,
}

/// The arguments of `start`.
#[derive(Debug, Args)]
pub(crate) struct StartArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
    /// The command (default: `command` in Lichtara.toml).
    #[arg(last = true)]
    pub(crate) command: Vec<String>,
}

/// The arguments of `reload`.
#[derive(Debug, Args)]
pub(crate) struct ReloadArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
}

/// The arguments of `stop`.
#[derive(Debug, Args)]
pub(crate) struct StopArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
    /// How long to wait after SIGTERM (default: `stop_timeout`, else 10s).
    #[arg(long, value_parser = duration_arg)]
    pub(crate) timeout: Option<Duration>,
}

/// The arguments of `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The arguments of `restart`.
#[derive(Debug, Args)]
pub(crate) struct RestartArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
    /// How long to wait after SIGTERM.
    #[arg(long, value_parser = duration_arg)]
    pub(crate) timeout: Option<Duration>,
    #[command(flatten)]
    pub(crate) serve: ServeArgs,
    /// The command (default: Lichtara.toml's, else the one recorded).
    #[arg(last = true)]
    pub(crate) command: Vec<String>,
}

/// The arguments of `logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
    /// How many lines.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub(crate) lines: usize,
    /// Keep printing what is appended, until Ctrl-C.
    #[arg(short = 'f', long)]
    pub(crate) follow: bool,
}

/// The arguments of `cleanup`.
#[derive(Debug, Args)]
pub(crate) struct CleanupArgs {
    /// Only list them.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Do not ask before ending them.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// How long to wait after SIGTERM before SIGKILL.
    #[arg(long, value_parser = duration_arg, default_value = "5s")]
    pub(crate) timeout: Duration,
}

/// The arguments of `run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) name: NameArg,
    /// How long the command gets after a forwarded signal before SIGKILL.
    #[arg(long, value_parser = duration_arg)]
    pub(crate) timeout: Option<Duration>,
    /// A listener held for the whole run, passed by socket activation:
    /// NAME=IP:PORT or NAME=unix:PATH; repeatable.
    #[arg(long = "listen", value_name = "NAME=ADDR")]
    pub(crate) listen: Vec<String>,
    /// Restart the command when a file under PATH changes (debounced;
    /// `.git`, `target` and `.lichtara` ignored); repeatable. The old
    /// process ends before the new one starts; held listeners keep their
    /// backlog meanwhile.
    #[arg(long, value_name = "PATH")]
    pub(crate) watch: Vec<PathBuf>,
    /// The command (default: `command` in Lichtara.toml).
    #[arg(last = true)]
    pub(crate) command: Vec<String>,
}

/// The arguments of `up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// The services (default: every one the project declares).
    pub(crate) names: Vec<String>,
}

/// The arguments of `down`.
#[derive(Debug, Args)]
pub(crate) struct DownArgs {
    /// The services (default: every one of the project).
    pub(crate) names: Vec<String>,
    /// How long each gets after its stop signal (default: its
    /// `stop_timeout`, else 10s).
    #[arg(long, value_parser = duration_arg)]
    pub(crate) timeout: Option<Duration>,
}

/// The arguments of `unit`.
#[derive(Debug, Args)]
pub(crate) struct UnitArgs {
    /// The service (default: `--name`'s default; every one of a project of
    /// several services).
    pub(crate) name: Option<String>,
    /// A unit of the user's systemd (`systemctl --user`), installed in
    /// ~/.config/systemd/user.
    #[arg(long)]
    pub(crate) user: bool,
    /// Write it where systemd looks (/etc/systemd/system, or the user's),
    /// rather than print it.
    #[arg(long)]
    pub(crate) install: bool,
}

/// The arguments of `ps`.
#[derive(Debug, Args)]
pub(crate) struct PsArgs {
    /// Print JSON: an array of what `status --json` says of each.
    #[arg(long)]
    pub(crate) json: bool,
}

/// The arguments of `supervise`.
#[derive(Debug, Args)]
pub(crate) struct SuperviseArgs {
    #[arg(long)]
    pub(crate) name: String,
    /// The pipe to report to `start` on.
    #[arg(long)]
    pub(crate) report_fd: i32,
    /// The name's lock, taken by `start`.
    #[arg(long)]
    pub(crate) lock_fd: i32,
    /// NAME=ADDR, checked by `start`.
    #[arg(long = "listen")]
    pub(crate) listen: Vec<String>,
    #[arg(long, default_value = "none")]
    pub(crate) ready: String,
    #[arg(long, value_parser = duration_arg)]
    pub(crate) ready_timeout: Duration,
    #[arg(last = true, required = true)]
    pub(crate) command: Vec<String>,
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
