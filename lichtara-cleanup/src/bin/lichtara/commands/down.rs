//! `lichtara down [NAME…]`: stops the named services and every service
//! that depends on them (by default every service of the project, the
//! declared ones and any other with a record), dependents first. A
//! service that cannot be stopped is named, and the others are stopped
//! anyway.

use std::process::ExitCode;
use std::time::Duration;

use super::stop::{self, StopOutcome};
use crate::Failure;
use crate::project::Project;

pub(crate) fn run(
    project: &Project,
    names: &[String],
    timeout: Option<Duration>,
) -> Result<ExitCode, Failure> {
    let mut order = project.config.stop_order(names)?;
    if names.is_empty() {
        // Started under another name (`start -N`): not in the file, so no
        // dependency of anything; stopped first.
        let recorded = super::recorded_names(project)?;
        let others: Vec<String> = recorded
            .into_iter()
            .filter(|name| !order.contains(name))
            .collect();
        order.splice(0..0, others);
    }
    let mut failed = Vec::new();
    for name in &order {
        let timeout = project.service(name).stop_timeout(timeout)?;
        match stop::stop(project, name, timeout) {
            Ok(StopOutcome::NotRunning) => {}
            Ok(StopOutcome::Stale(why)) => {
                say!("`{name}` was not running: removed its stale PID file ({why})");
            }
            Ok(StopOutcome::Done {
                pid,
                elapsed,
                killed,
            }) => {
                let how = if killed > 0 {
                    format!("; {killed} process(es) needed SIGKILL")
                } else {
                    String::new()
                };
                say!("stopped `{name}` (pid {pid}) in {elapsed:.0?}{how}");
            }
            Err(failure) => {
                note!("`{name}`: {}", failure.message());
                failed.push((name.clone(), failure));
            }
        }
    }
    match failed.len() {
        0 => Ok(ExitCode::SUCCESS),
        _ => {
            let names: Vec<&str> = failed.iter().map(|(name, _)| name.as_str()).collect();
            let refused = failed
                .iter()
                .all(|(_, failure)| failure.code() == crate::exit::Exit::Refused);
            let message = format!("not stopped: {}", names.join(", "));
            Err(if refused {
                Failure::refused(message)
            } else {
                Failure::new(message)
            })
        }
    }
}
