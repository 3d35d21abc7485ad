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
    let inspected = inspect(project, &name)?;
    if as_json {
        say!("{}", inspected.json);
    } else {
        say!("{}", inspected.text);
    }
    Ok(ExitCode::from(inspected.code))
}

/// What `status` finds of one service: its LSB code, and what it says
/// of it in JSON and in words.
pub(crate) struct Inspected {
    pub(crate) code: Status,
    pub(crate) json: serde_json::Value,
    pub(crate) text: String,
}

/// Looks at service `name`: its record, its processes, its supervisor.
pub(crate) fn inspect(project: &Project, name: &str) -> Result<Inspected, Failure> {
    let name = name.to_owned();
    let state_dir = project.existing_state_dir()?;
    let record = match &state_dir {
        Some(state) => record::read(&record::pid_path(state, &name))?,
        None => None,
    };
    if record.is_none()
        && let Some(state) = &state_dir
        && let Ok(live) = Connection::find(project, state, &name).and_then(Connection::status)
    {
        return Ok(Inspected {
            code: Status::Running,
            json: json!({"name": name, "state": "running", "pid": live.pid, "supervisor": {"pid": live.supervisor, "state": live.phase}, "reason": "no PID file"}),
            text: format!(
                "`{name}` is running (pid {}) under its supervisor (pid {}), but its PID file is missing: `lichtara stop` still works",
                live.pid, live.supervisor
            ),
        });
    }
    // Failed: no record, or one its supervisor has not removed yet as it
    // exits (a record naming a live process wins).
    let failed = state_dir
        .as_ref()
        .and_then(|state| record::read_failed(&record::failed_path(state, &name)))
        .filter(|_| {
            record.as_ref().is_none_or(|record| {
                !matches!(record.liveness(project, &name), Liveness::Running(_))
                    && !crate::client::supervisor_alive(record)
            })
        });
    if let Some(failed) = failed {
        let ago = crate::commands::now_secs().saturating_sub(failed.at);
        return Ok(Inspected {
            code: Status::Stopped,
            json: json!({"name": name, "state": "failed", "ended": failed.ended, "restarts": failed.restarts, "reason": failed.why, "failed_at": failed.at, "last_lines": failed.tail.lines().map(|line| line.trim_start_matches("  | ")).filter(|line| !line.is_empty()).collect::<Vec<_>>()}),
            text: format!(
                "`{name}` has failed ({} ago): {}{}\n  `lichtara start -N {name}` starts it again",
                super::short_duration(std::time::Duration::from_secs(ago)),
                failed.why,
                if failed.tail.is_empty() {
                    String::new()
                } else {
                    format!("\n  its last lines:{}", failed.tail)
                }
            ),
        });
    }
    let (Some(record), Some(state_dir)) = (record, state_dir) else {
        return Ok(Inspected {
            code: Status::Stopped,
            json: json!({"name": name, "state": "stopped"}),
            text: format!("`{name}` is not running"),
        });
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
            return Ok(Inspected {
                code: Status::Running,
                json: json!({"name": name, "state": live.phase, "pid": live.pid, "supervisor": {"pid": live.supervisor, "state": live.phase, "restart": live.restart, "restarts": live.restarts, "last_exit": live.last_exit}, "generation": live.generation, "restarts": live.restarts}),
                text: format!(
                    "`{name}` is {} under its supervisor (pid {}): generation {} (pid {}) has ended{}, the next is starting",
                    live.phase,
                    live.supervisor,
                    live.generation,
                    live.pid,
                    match &live.last_exit {
                        Some(how) if live.phase == "restarting" =>
                            format!(" ({how}; restart {} by the policy)", live.restarts),
                        _ => String::new(),
                    }
                ),
            });
        }
        Liveness::Stale(why) => {
            return Ok(Inspected {
                code: Status::Dead,
                json: json!({"name": name, "state": "stale", "pid": record.pid, "reason": why}),
                text: format!("`{name}` is dead but its PID file remains: {why}"),
            });
        }
        Liveness::Foreign(why) => {
            return Ok(Inspected {
                code: Status::Stopped,
                json: json!({"name": name, "state": "stopped", "reason": why}),
                text: format!("`{name}` is not running here: {why}"),
            });
        }
        Liveness::Refused(why) => {
            return Ok(Inspected {
                code: Status::Unknown,
                json: json!({"name": name, "state": "unknown", "pid": record.pid, "reason": why}),
                text: format!("`{name}`: unknown: {why}"),
            });
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
            "pid {} ({}; {} logged, {} rotation(s)){}\n  generation: {}, ready: {}, restart: {}{}{}",
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
            if status.restart.is_empty() {
                "no"
            } else {
                &status.restart
            },
            match (status.restarts, &status.last_exit) {
                (0, _) => String::new(),
                (count, Some(how)) => format!(" ({count} restart(s), the last after {how})"),
                (count, None) => format!(" ({count} restart(s))"),
            },
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
    Ok(Inspected {
        code: Status::Running,
        json: json!({
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
                    "restart": status.restart,
                    "restarts": status.restarts,
                    "last_exit": status.last_exit,
                }),
                Supervisor::Missing(why) | Supervisor::Unreachable(why) => json!({
                    "pid": record.supervisor.map(|s| s.pid),
                    "state": if matches!(supervisor, Supervisor::Missing(_)) { "missing" } else { "unreachable" },
                    "reason": why,
                }),
                Supervisor::None => serde_json::Value::Null,
            },
        }),
        text,
    })
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
