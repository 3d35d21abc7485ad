//! `lichtara restart`: stop, then start with the same command.

use std::process::ExitCode;
use std::time::Duration;

use crate::Failure;
use crate::project::Project;
use crate::record;

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    timeout: Option<Duration>,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let timeout = project.stop_timeout(timeout)?;
    // The command: given, else Lichtara.toml's, else the one last recorded.
    let recorded = match project.existing_state_dir()? {
        Some(state) => record::read(&record::pid_path(&state, &name))?.map(|record| record.command),
        None => None,
    };
    let command = match project.command(command) {
        Ok(command) => command,
        Err(failure) => recorded.ok_or(failure)?,
    };
    super::stop::stop(project, &name, timeout)?;
    let pid = super::start::start(project, &name, &command)?;
    say!("{pid}");
    Ok(ExitCode::SUCCESS)
}
