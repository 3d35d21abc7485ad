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
//! lichtara up                      # every service of Lichtara.toml or a Procfile
//! lichtara ps
//! lichtara down
//! ```
//!
//! State lives in `.lichtara/` in the project directory (the current one,
//! or `--dir`); settings in an optional `Lichtara.toml` (or a `Procfile`).
//! Linux only.

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::{Exit, Status};

// First: its `say!` and `note!` serve every module below.
#[macro_use]
mod output;

mod cli;
mod exit;

#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod commands;
#[cfg(target_os = "linux")]
mod config;
#[cfg(target_os = "linux")]
mod containment;
#[cfg(target_os = "linux")]
mod listeners;
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
mod systemd;
#[cfg(target_os = "linux")]
mod terminate;
#[cfg(target_os = "linux")]
mod watch;

/// An error that ends the command: one line, and an exit code.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    code: Exit,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: Exit::Failure,
        }
    }

    /// A process was not provably the project's; nothing was signalled.
    pub(crate) fn refused(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: Exit::Refused,
        }
    }

    pub(crate) fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn code(&self) -> Exit {
        self.code
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `status` reports every failure in its own terms: LSB code 4, and a
    // JSON object with `--json`.
    let (status_json, status_name) = match &cli.command {
        Command::Status(status) => (Some(status.json), status.name.name.clone()),
        _ => (None, None),
    };
    match dispatch(cli) {
        Ok(code) if output::stdout_failed() => {
            note!("cannot write to stdout: what this command printed is lost");
            match status_json {
                Some(_) => ExitCode::from(Status::Unknown),
                None if code == ExitCode::SUCCESS => ExitCode::from(Exit::Failure),
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
                Some(_) => ExitCode::from(Status::Unknown),
                None => ExitCode::from(failure.code),
            }
        }
    }
}

#[cfg(target_os = "linux")]
fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let project = project::Project::open(cli.dir.as_deref())?;
    match cli.command {
        Command::Start(args) => commands::start::run(
            &project,
            args.name.name.as_deref(),
            &args.serve,
            &args.command,
        ),
        Command::Stop(args) => {
            commands::stop::run(&project, args.name.name.as_deref(), args.timeout)
        }
        Command::Status(args) => {
            commands::status::run(&project, args.name.name.as_deref(), args.json)
        }
        Command::Restart(args) => commands::restart::run(
            &project,
            args.name.name.as_deref(),
            args.timeout,
            &args.serve,
            &args.command,
        ),
        Command::Logs(args) => {
            commands::logs::run(&project, args.name.name.as_deref(), args.lines, args.follow)
        }
        Command::Cleanup(args) => {
            commands::cleanup::run(&project, args.dry_run, args.yes, args.timeout)
        }
        Command::Run(args) => commands::run::run(
            &project,
            args.name.name.as_deref(),
            args.timeout,
            &args.listen,
            &args.watch,
            &args.command,
        ),
        Command::Supervise(args) => Ok(supervisor::run(
            &project,
            &args.name,
            args.report_fd,
            args.lock_fd,
            &args.command,
            &supervisor::Options {
                listen: &args.listen,
                ready: &args.ready,
                ready_timeout: args.ready_timeout,
            },
        )),
        Command::Reload(args) => commands::reload::run(&project, args.name.name.as_deref()),
        Command::Up(args) => commands::up::run(&project, &args.names),
        Command::Down(args) => commands::down::run(&project, &args.names, args.timeout),
        Command::Ps(args) => commands::ps::run(&project, args.json),
        Command::Unit(args) => {
            commands::unit::run(&project, args.name.as_deref(), args.user, args.install)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn dispatch(_cli: Cli) -> Result<ExitCode, Failure> {
    Err(Failure::new(
        "the process manager needs Linux (/proc, pidfd, process groups); this platform is not supported",
    ))
}
