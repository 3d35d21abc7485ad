//! `lichtara restart`: stop, then start with the same command (or the one
//! given, or Lichtara.toml's). When the service's supervisor holds
//! declared listeners, the supervisor stays and restarts the service itself:
//! connections that arrive meanwhile wait in the held sockets' backlog
//! instead of being refused. Otherwise the whole supervision is stopped
//! and started again, and connections are refused in between — said so.

use std::process::ExitCode;
use std::time::Duration;

use crate::Failure;
use crate::cli::ServeArgs;
use crate::client::Connection;
use crate::project::Project;
use crate::record;

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    timeout: Option<Duration>,
    serve: &ServeArgs,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let service = project.service(&name);
    let timeout = service.stop_timeout(timeout)?;
    // The command: given, else Lichtara.toml's (if it is this service's),
    // else the one last recorded.
    let state = project.existing_state_dir()?;
    let recorded = match &state {
        Some(state) => record::read(&record::pid_path(state, &name))?,
        None => None,
    };
    let command = if !command.is_empty() {
        command.to_vec()
    } else if let Some(command) = project.config.declared_command(&name) {
        command
    } else if let Some(record) = &recorded {
        record.command.clone()
    } else {
        service.command(command)?
    };
    let same_serving =
        serve.listen.is_empty() && serve.ready.is_none() && serve.ready_timeout.is_none();
    if let (Some(state), Some(record)) = (&state, &recorded)
        && same_serving
        && let Ok(connection) = Connection::open(state, &name, record)
        && let Ok(status) = connection.status()
        && !status.listeners.is_empty()
    {
        let connection = Connection::open(state, &name, record)
            .map_err(|why| Failure::new(format!("cannot restart `{name}`: {why}")))?;
        let changed = (record.command != command).then(|| command.clone());
        let restarted = connection
            .reload(state, &name, record, Some(timeout), changed)
            .map_err(|why| Failure::new(format!("restart of `{name}` failed: {why}")))?;
        note!(
            "restarted `{name}` on its held listeners ({}): the old process (pid {}) ended ({}); the new one (pid {}) ready after {} from the request",
            status.listeners.join(", "),
            restarted.old_pid,
            restarted.old_ended,
            restarted.pid,
            super::millis(Duration::from_millis(restarted.ready_ms))
        );
        say!("{}", restarted.pid);
        return Ok(ExitCode::SUCCESS);
    }
    if service.listeners(&serve.listen)?.is_empty() {
        note!(
            "`{name}` has no declared listeners: it is stopped, then started, and connections are refused in between (declare `listen` in Lichtara.toml, then `lichtara reload` replaces it with none refused)"
        );
    }
    super::stop::stop(project, &name, timeout)?;
    let pid = super::start::start(project, &name, serve, &command)?;
    say!("{pid}");
    Ok(ExitCode::SUCCESS)
}
