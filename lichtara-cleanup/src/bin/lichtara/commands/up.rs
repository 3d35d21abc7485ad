//! `lichtara up [NAME…]`: starts the named services (every declared one
//! by default) and what they depend on, in dependency order, each under a
//! supervisor of its own and ready before its dependents start. A service
//! already running is left as it is; one that does not start stops the
//! rest of the order (its dependents would not find it) and is named.

use std::process::ExitCode;

use crate::Failure;
use crate::cli::ServeArgs;
use crate::exit::Status;
use crate::project::Project;

pub(crate) fn run(project: &Project, names: &[String]) -> Result<ExitCode, Failure> {
    let order = project.config.start_order(names)?;
    if order.is_empty() {
        return Err(Failure::new(
            "this project declares no services: add `[services.NAME]` tables (or a top-level `command`) to Lichtara.toml, or a Procfile",
        ));
    }
    let mut started = Vec::new();
    for (at, name) in order.iter().enumerate() {
        let inspected = super::status::inspect(project, name)?;
        if inspected.code == Status::Running {
            note!("`{name}` is already running");
            continue;
        }
        let service = project.service(name);
        let command = service.command(&[])?;
        let after = &service.keys.depends_on;
        if !after.is_empty() {
            note!(
                "starting `{name}` (its dependencies are ready: {})",
                after.join(", ")
            );
        }
        match super::start::start(project, name, &ServeArgs::default(), &command) {
            Ok(pid) => {
                say!("`{name}` is ready (pid {pid})");
                started.push(name.clone());
            }
            Err(failure) => {
                let left: Vec<&str> = order[at + 1..].iter().map(String::as_str).collect();
                return Err(Failure::new(format!(
                    "`{name}` did not start: {}{}{}",
                    failure.message(),
                    if left.is_empty() {
                        String::new()
                    } else {
                        format!("\nnot started, as they come after it: {}", left.join(", "))
                    },
                    if started.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "\nstarted and left running: {} (`lichtara down` stops them)",
                            started.join(", ")
                        )
                    }
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
