//! `lichtara status`: LSB exit codes — 0 running, 1 dead with a stale PID
//! file, 3 not running, 4 unknown (an error, or a PID file whose process
//! is not provably this project's).

use std::process::ExitCode;

use serde_json::json;

use crate::client::Connection;
use crate::containment::Containment;
use crate::exit::Status;
use crate::project::Project;
use crate::protocol::StatusReply;
use crate::record::Record;
use crate::record::{self, Liveness};
use crate::state::StateDir;
use crate::{Failure, procfs};

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let state_dir = project.existing_state_dir()?;
    let record = match &state_dir {
        Some(state) => record::read(&record::pid_path(state, &name))?,
        None => None,
    };
    if record.is_none()
        && let Some(state) = &state_dir
        && let Ok(live) = Connection::find(project, state, &name).and_then(Connection::status)
    {
        report(
            as_json,
            json!({"name": name, "state": "running", "pid": live.pid, "supervisor": {"pid": live.supervisor, "state": live.phase}, "reason": "no PID file"}),
            &format!(
                "`{name}` is running (pid {}) under its supervisor (pid {}), but its PID file is missing: `lichtara stop` still works",
                live.pid, live.supervisor
            ),
        );
        return Ok(ExitCode::from(Status::Running));
    }
    let (Some(record), Some(state_dir)) = (record, state_dir) else {
        report(
            as_json,
            json!({"name": name, "state": "stopped"}),
            &format!("`{name}` is not running"),
        );
        return Ok(ExitCode::from(Status::Stopped));
    };
    match record.liveness(project, &name) {
        Liveness::Running(_) => {}
        // Between two generations (a restart on held listeners, or a
        // reload whose old one ended by itself) the recorded process is
        // gone while the supervisor brings up the next: it says so.
        Liveness::Stale(_)
            if let Ok(live) =
                Connection::open(&state_dir, &name, &record).and_then(Connection::status)
                && live.phase != "running" =>
        {
            report(
                as_json,
                json!({"name": name, "state": live.phase, "pid": live.pid, "supervisor": {"pid": live.supervisor, "state": live.phase}, "generation": live.generation}),
                &format!(
                    "`{name}` is {} under its supervisor (pid {}): generation {} (pid {}) has ended, the next is starting",
                    live.phase, live.supervisor, live.generation, live.pid
                ),
            );
            return Ok(ExitCode::from(Status::Running));
        }
        Liveness::Stale(why) => {
            report(
                as_json,
                json!({"name": name, "state": "stale", "pid": record.pid, "reason": why}),
                &format!("`{name}` is dead but its PID file remains: {why}"),
            );
            return Ok(ExitCode::from(Status::Dead));
        }
        Liveness::Foreign(why) => {
            report(
                as_json,
                json!({"name": name, "state": "stopped", "reason": why}),
                &format!("`{name}` is not running here: {why}"),
            );
            return Ok(ExitCode::from(Status::Stopped));
        }
        Liveness::Refused(why) => {
            report(
                as_json,
                json!({"name": name, "state": "unknown", "pid": record.pid, "reason": why}),
                &format!("`{name}`: unknown: {why}"),
            );
            return Ok(ExitCode::from(Status::Unknown));
        }
    }
    let all = procfs::all_stats().unwrap_or_default();
    let descendants = procfs::descendants(record.pid, &all);
    let (containment, members) = match Containment::of(project, &name, false) {
        // `run` stays outside its command's leaf (it is its supervisor).
        Containment::Cgroup(leaf)
            if leaf.exists() && (leaf.holds(record.pid) || record.supervisor.is_none()) =>
        {
            (format!("cgroup v2 {}", leaf.path.display()), leaf.members())
        }
        other => {
            let why = match other {
                Containment::GroupAndMarker(why) => why,
                Containment::Cgroup(_) => "it was started outside its cgroup".to_owned(),
            };
            let mut members = vec![record.pid];
            members.extend(&descendants);
            (
                format!("process group and LICHTARA_MARKER only ({why})"),
                members,
            )
        }
    };
    // The cgroup's own count where the v2 memory controller is enabled for
    // it (it includes the page cache); else the members' resident sets.
    let memory_kib: u64 = match Containment::of(project, &name, false) {
        Containment::Cgroup(leaf) if leaf.exists() => {
            leaf.memory_current().map(|bytes| bytes / 1024)
        }
        _ => None,
    }
    .unwrap_or_else(|| members.iter().filter_map(|pid| procfs::rss_kib(*pid)).sum());
    let supervisor = supervisor(&state_dir, &name, &record);
    let supervisor_text = match &supervisor {
        Supervisor::Live(status) => format!(
            "pid {} ({}; {} logged, {} rotation(s)){}\n  generation: {}, ready: {}{}",
            status.supervisor,
            status.phase,
            bytes(status.logged_bytes),
            status.log_rotations,
            status
                .log_error
                .as_ref()
                .map(|error| format!("\n  log: NOT WRITTEN: {error}"))
                .unwrap_or_default(),
            status.generation,
            status.ready,
            if status.listeners.is_empty() {
                String::new()
            } else {
                format!(
                    "\n  listeners (held by the supervisor): {}",
                    status.listeners.join(", ")
                )
            }
        ),
        Supervisor::Missing(why) => {
            format!("missing ({why}): its output is no longer logged")
        }
        Supervisor::Unreachable(why) => format!("unreachable ({why})"),
        Supervisor::None => "none (`lichtara run` supervises it in the foreground)".to_owned(),
    };
    let ports = procfs::listening_ports(&members);
    let uptime = procfs::age(record.start_time).unwrap_or_default();
    // Running, or (its supervisor says) still starting, or stopping: all
    // LSB's 0, and told apart here.
    let state = match &supervisor {
        Supervisor::Live(status) if status.phase != "running" => status.phase.clone(),
        _ => "running".to_owned(),
    };
    let text = format!(
        "`{name}` is {state}: pid {}, up {}, memory {:.1} MiB, {} process(es), {} descendant(s), listening on {}\n  command: {}\n  contained by: {containment}\n  supervisor: {supervisor_text}",
        record.pid,
        super::short_duration(uptime),
        memory_kib as f64 / 1024.0,
        members.len(),
        descendants.len(),
        if ports.is_empty() {
            "no TCP port".to_owned()
        } else {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
        record.command.join(" ")
    );
    report(
        as_json,
        json!({
            "name": name,
            "state": state,
            "pid": record.pid,
            "uptime_secs": uptime.as_secs(),
            "memory_kib": memory_kib,
            "descendants": descendants.len(),
            "members": members,
            "containment": containment,
            "ports": ports,
            "command": record.command,
            "started_at": record.started_at,
            "supervisor": match &supervisor {
                Supervisor::Live(status) => json!({
                    "pid": status.supervisor,
                    "state": status.phase,
                    "logged_bytes": status.logged_bytes,
                    "log_rotations": status.log_rotations,
                    "log_error": status.log_error,
                    "generation": status.generation,
                    "ready": status.ready,
                    "listeners": status.listeners,
                }),
                Supervisor::Missing(why) | Supervisor::Unreachable(why) => json!({
                    "pid": record.supervisor.map(|s| s.pid),
                    "state": if matches!(supervisor, Supervisor::Missing(_)) { "missing" } else { "unreachable" },
                    "reason": why,
                }),
                Supervisor::None => serde_json::Value::Null,
            },
        }),
        &text,
    );
    Ok(ExitCode::from(Status::Running))
}

/// What `status` knows of a service's supervisor.
enum Supervisor {
    Live(StatusReply),
    /// Gone: killed, say.
    Missing(String),
    /// Alive, but its socket does not answer as it should.
    Unreachable(String),
    /// A `lichtara run` record: that command is its own supervisor.
    None,
}

fn supervisor(state: &StateDir, name: &str, record: &Record) -> Supervisor {
    if record.supervisor.is_none() {
        return Supervisor::None;
    }
    match Connection::open(state, name, record).and_then(Connection::status) {
        Ok(status) => Supervisor::Live(status),
        Err(why) if crate::client::supervisor_alive(record) => Supervisor::Unreachable(why),
        Err(why) => Supervisor::Missing(why),
    }
}

/// `512 B`, `3.1 KiB`, `12.0 MiB`.
fn bytes(count: u64) -> String {
    match count {
        0..1024 => format!("{count} B"),
        1024..1_048_576 => format!("{:.1} KiB", count as f64 / 1024.0),
        _ => format!("{:.1} MiB", count as f64 / 1_048_576.0),
    }
}

fn report(as_json: bool, value: serde_json::Value, text: &str) {
    if as_json {
        say!("{value}");
    } else {
        say!("{text}");
    }
}
