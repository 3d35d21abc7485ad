//! `lichtara reload`: the service's supervisor starts the next generation
//! beside the running one on the held listeners, waits until it is ready,
//! then stops the old one; a generation that ends or is not ready in time
//! is ended and the old one keeps serving. Nothing is refused meanwhile:
//! both generations accept on the same sockets until the old one stops
//! accepting, and what arrives in between waits in the backlog.

use std::process::ExitCode;

use crate::Failure;
use crate::client::Connection;
use crate::project::Project;
use crate::record;

pub(crate) fn run(project: &Project, name: Option<&str>) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let Some(state) = project.existing_state_dir()? else {
        return Err(Failure::new(format!("`{name}` is not running")));
    };
    let Some(record) = record::read(&record::pid_path(&state, &name))? else {
        return Err(Failure::new(format!("`{name}` is not running")));
    };
    let connection = Connection::open(&state, &name, &record).map_err(|why| {
        Failure::new(format!(
            "cannot reload `{name}`: {why}; only its supervisor can (`lichtara restart -N {name}` stops it, then starts it)"
        ))
    })?;
    // A command changed in Lichtara.toml is the new generation's.
    let command = project
        .config
        .declared_command(&name)
        .filter(|command| *command != record.command);
    if let Some(command) = &command {
        note!(
            "the new generation runs Lichtara.toml's command: {}",
            command.join(" ")
        );
    }
    let reloaded = connection
        .reload(&state, &name, &record, None, command)
        .map_err(|why| Failure::new(format!("reload of `{name}` failed: {why}")))?;
    note!(
        "reloaded `{name}`: generation {} (pid {}) ready after {}; the old one (pid {}) ended ({}) {} after the request{}",
        reloaded.generation,
        reloaded.pid,
        super::millis(std::time::Duration::from_millis(reloaded.ready_ms)),
        reloaded.old_pid,
        reloaded.old_ended,
        super::millis(std::time::Duration::from_millis(reloaded.old_gone_ms)),
        if reloaded.killed > 0 {
            format!("; {} process(es) needed SIGKILL", reloaded.killed)
        } else {
            String::new()
        }
    );
    say!("{}", reloaded.pid);
    Ok(ExitCode::SUCCESS)
}
