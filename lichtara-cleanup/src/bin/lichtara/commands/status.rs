//! `lichtara status`: LSB exit codes — 0 running, 1 dead with a stale PID
//! file, 3 not running, 4 unknown (an error, or a PID file whose process
//! is not provably this project's).

use std::process::ExitCode;

use serde_json::json;

use crate::containment::Containment;
use crate::project::Project;
use crate::record::{self, Liveness};
use crate::{Failure, exit, procfs};

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let record = match project.existing_state_dir()? {
        Some(state) => record::read(&record::pid_path(&state, &name))?,
        None => None,
    };
    let Some(record) = record else {
        report(
            as_json,
            json!({"name": name, "state": "stopped"}),
            &format!("`{name}` is not running"),
        );
        return Ok(ExitCode::from(exit::STATUS_STOPPED));
    };
    match record.liveness(project, &name) {
        Liveness::Running(_) => {}
        Liveness::Stale(why) => {
            report(
                as_json,
                json!({"name": name, "state": "stale", "pid": record.pid, "reason": why}),
                &format!("`{name}` is dead but its PID file remains: {why}"),
            );
            return Ok(ExitCode::from(exit::STATUS_DEAD));
        }
        Liveness::Foreign(why) => {
            report(
                as_json,
                json!({"name": name, "state": "stopped", "reason": why}),
                &format!("`{name}` is not running here: {why}"),
            );
            return Ok(ExitCode::from(exit::STATUS_STOPPED));
        }
        Liveness::Refused(why) => {
            report(
                as_json,
                json!({"name": name, "state": "unknown", "pid": record.pid, "reason": why}),
                &format!("`{name}`: unknown: {why}"),
            );
            return Ok(ExitCode::from(exit::STATUS_UNKNOWN));
        }
    }
    let all = procfs::all_stats().unwrap_or_default();
    let descendants = procfs::descendants(record.pid, &all);
    let (containment, members) = match Containment::of(project, &name, false) {
        Containment::Cgroup(leaf) if leaf.exists() && leaf.holds(record.pid) => {
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
    let memory_kib: u64 = members.iter().filter_map(|pid| procfs::rss_kib(*pid)).sum();
    let ports = procfs::listening_ports(&members);
    let uptime = procfs::age(record.start_time).unwrap_or_default();
    let text = format!(
        "`{name}` is running: pid {}, up {}, memory {:.1} MiB, {} process(es), {} descendant(s), listening on {}\n  command: {}\n  contained by: {containment}",
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
            "state": "running",
            "pid": record.pid,
            "uptime_secs": uptime.as_secs(),
            "memory_kib": memory_kib,
            "descendants": descendants.len(),
            "members": members,
            "containment": containment,
            "ports": ports,
            "command": record.command,
            "started_at": record.started_at,
        }),
        &text,
    );
    Ok(ExitCode::from(exit::STATUS_RUNNING))
}

fn report(as_json: bool, value: serde_json::Value, text: &str) {
    if as_json {
        say!("{value}");
    } else {
        say!("{text}");
    }
}
