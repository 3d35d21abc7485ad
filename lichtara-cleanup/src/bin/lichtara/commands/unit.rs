//! `lichtara unit [--user] [--install] [NAME]`: the systemd unit that runs
//! a service under `lichtara run`, so that it survives a reboot
//! (`systemctl enable --now`). Printed, or with `--install` written where
//! systemd looks: `/etc/systemd/system`, or `~/.config/systemd/user` with
//! `--user`. Without NAME in a project of several services, one unit for
//! each, their `depends_on` as `Requires=` and `After=`.
//!
//! The unit is `Type=notify`: `run` says `READY=1` once the service is
//! ready by its `ready` setting (a service that says it itself, `ready =
//! "notify"`, is given the socket: `NotifyAccess=all`). `ExecReload=`
//! sends SIGHUP, which `run` passes on (a lichtara service with reload
//! hooks reloads). `KillMode=mixed`: systemd's stop signal goes to `run`,
//! which ends the service within its `stop_timeout`; systemd's SIGKILL of
//! whatever is left comes only after `TimeoutStopSec`, 5 s later. The
//! unit's own cgroup contains the service (`LICHTARA_CGROUP_BASE=off`: a
//! cgroup of lichtara's outside it would hide processes from systemd).
//! The restart policy maps to `Restart=`, `RestartSec=` (the first
//! delay: systemd does not double it) and the start limit.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::Failure;
use crate::config::{RestartWhen, ServiceConfig};
use crate::project::Project;

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    user: bool,
    install: bool,
) -> Result<ExitCode, Failure> {
    let names = match name {
        Some(name) => vec![project.name(Some(name))?],
        None if project.config.has_services() => project.config.start_order(&[])?,
        None => vec![project.name(None)?],
    };
    let exe = std::env::current_exe()
        .map_err(|err| Failure::new(format!("cannot find this program: {err}")))?;
    let units: Vec<(String, String)> = names
        .iter()
        .map(|name| {
            let service = project.service(name);
            unit(project, &service, &exe, user).map(|text| (unit_name(project, name), text))
        })
        .collect::<Result<_, _>>()?;
    if !install {
        for (at, (file, text)) in units.iter().enumerate() {
            if at > 0 {
                say!("");
            }
            if units.len() > 1 {
                say!("# {file}");
            }
            say!("{}", text.trim_end());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let folder = folder(user)?;
    std::fs::create_dir_all(&folder)
        .map_err(|err| Failure::new(format!("cannot create {}: {err}", folder.display())))?;
    for (file, text) in &units {
        let path = folder.join(file);
        std::fs::write(&path, text)
            .map_err(|err| Failure::new(format!("cannot write {}: {err}", path.display())))?;
        say!("{}", path.display());
    }
    let scope = if user { "--user " } else { "" };
    let files: Vec<&str> = units.iter().map(|(file, _)| file.as_str()).collect();
    note!(
        "installed; to start now and at every boot: systemctl {scope}daemon-reload && systemctl {scope}enable --now {}",
        files.join(" ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `lichtara-<project folder>-<name>.service`: the folder's name keeps two
/// projects' `web` apart.
pub(crate) fn unit_name(project: &Project, name: &str) -> String {
    let folder: String = project
        .dir
        .file_name()
        .map(|folder| folder.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if folder.is_empty() {
        format!("lichtara-{name}.service")
    } else {
        format!("lichtara-{folder}-{name}.service")
    }
}

/// Where systemd looks for units: the system's, or this user's.
fn folder(user: bool) -> Result<PathBuf, Failure> {
    if !user {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(config).join("systemd/user"));
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .ok_or_else(|| Failure::new("--user needs HOME (or XDG_CONFIG_HOME) to find ~/.config"))?;
    Ok(PathBuf::from(home).join(".config/systemd/user"))
}

/// The unit of `service`.
fn unit(
    project: &Project,
    service: &ServiceConfig,
    exe: &std::path::Path,
    user: bool,
) -> Result<String, Failure> {
    // Checked as `start` checks them: a unit is written only for a
    // service that could start.
    service.command(&[])?;
    let stop_timeout = service.stop_timeout(None)?;
    let stop_signal = service.stop_signal()?;
    let policy = service.restart()?;
    let dir = project.dir.display().to_string();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# Made by `lichtara unit` for service `{}` of {dir}.",
        service.name
    );
    text.push_str("[Unit]\n");
    let _ = writeln!(text, "Description={} of {dir} (lichtara)", service.name);
    let after: Vec<String> = service
        .keys
        .depends_on
        .iter()
        .map(|dependency| unit_name(project, dependency))
        .collect();
    if !after.is_empty() {
        let _ = writeln!(text, "Requires={}", after.join(" "));
    }
    let _ = writeln!(
        text,
        "After={}",
        [if user {
            "default.target"
        } else {
            "network.target"
        }
        .to_owned()]
        .into_iter()
        .chain(after)
        .collect::<Vec<_>>()
        .join(" ")
    );
    if policy.when != RestartWhen::No {
        // systemd counts starts, the policy restarts: limit + 1 starts.
        let _ = writeln!(
            text,
            "StartLimitIntervalSec={}\nStartLimitBurst={}",
            seconds(policy.window),
            policy.limit.saturating_add(1)
        );
    }
    text.push_str("\n[Service]\nType=notify\nNotifyAccess=all\n");
    let _ = writeln!(text, "WorkingDirectory={}", quote_path(&dir));
    let _ = writeln!(
        text,
        "ExecStart={} --dir {} run --name {}",
        quote_path(&exe.display().to_string()),
        quote_path(&dir),
        service.name
    );
    text.push_str("ExecReload=/bin/kill -HUP $MAINPID\nKillMode=mixed\n");
    let _ = writeln!(text, "KillSignal={}", signal_name(stop_signal));
    let _ = writeln!(
        text,
        "TimeoutStopSec={}",
        seconds(stop_timeout + std::time::Duration::from_secs(5))
    );
    let _ = writeln!(text, "Restart={}", policy.when.word());
    if policy.when != RestartWhen::No {
        // systemd's delay is fixed (its RestartSteps= is newer than many
        // hosts' systemd): the first one.
        let _ = writeln!(text, "RestartSec={}", millis(policy.delay));
    }
    if let Some(path) = std::env::var_os("PATH") {
        let _ = writeln!(
            text,
            "Environment={}",
            quote_env("PATH", &path.to_string_lossy())
        );
    }
    let _ = writeln!(text, "Environment=LICHTARA_CGROUP_BASE=off");
    for (key, value) in service.env() {
        let _ = writeln!(text, "Environment={}", quote_env(key, value));
    }
    if !user && !rustix::process::getuid().is_root() {
        let _ = writeln!(text, "User={}", rustix::process::getuid().as_raw());
    }
    let _ = writeln!(
        text,
        "\n[Install]\nWantedBy={}",
        if user {
            "default.target"
        } else {
            "multi-user.target"
        }
    );
    Ok(text)
}

fn signal_name(signal: rustix::process::Signal) -> &'static str {
    use rustix::process::Signal;
    match signal {
        Signal::INT => "SIGINT",
        Signal::QUIT => "SIGQUIT",
        Signal::HUP => "SIGHUP",
        Signal::USR1 => "SIGUSR1",
        Signal::USR2 => "SIGUSR2",
        _ => "SIGTERM",
    }
}

/// Whole seconds, rounded up: systemd's `10s`.
fn seconds(duration: std::time::Duration) -> String {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    format!("{secs}s")
}

fn millis(duration: std::time::Duration) -> String {
    format!("{}ms", duration.as_millis().max(1))
}

/// A path for `ExecStart=` and `WorkingDirectory=`: quoted when it has
/// spaces, `\` and `"` escaped, `%` doubled (systemd's specifiers).
fn quote_path(path: &str) -> String {
    let escaped = path
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%");
    if escaped.contains(char::is_whitespace) {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// `"KEY=value"` for `Environment=`, escaped as systemd reads it.
fn quote_env(key: &str, value: &str) -> String {
    let value = value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$")
        .replace('\n', "\\n");
    format!("\"{key}={value}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped_as_systemd_reads_them() {
        assert_eq!(quote_path("/srv/app"), "/srv/app");
        assert_eq!(quote_path("/srv/my app"), "\"/srv/my app\"");
        assert_eq!(quote_path("/srv/100%"), "/srv/100%%");
        assert_eq!(quote_env("A", "x y"), "\"A=x y\"");
        assert_eq!(
            quote_env("A", "say \"$HOME\" 50%"),
            "\"A=say \\\"$$HOME\\\" 50%%\""
        );
        assert_eq!(seconds(std::time::Duration::from_millis(10_500)), "11s");
    }
}
