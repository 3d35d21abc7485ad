//! `lichtara ps`: every service of the project — the declared ones and any
//! other with a record or a recorded failure — a line each: state, PID,
//! uptime, restarts, memory, ports, readiness, containment; `--json` an
//! array of what `status --json` says of each.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::Failure;
use crate::project::Project;

pub(crate) fn run(project: &Project, as_json: bool) -> Result<ExitCode, Failure> {
    let mut names = project.config.names();
    for name in super::recorded_names(project)? {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names.sort();
    let rows: Vec<Value> = names
        .iter()
        .map(|name| match super::status::inspect(project, name) {
            Ok(inspected) => inspected.json,
            Err(failure) => json!({"name": name, "state": "unknown", "error": failure.message()}),
        })
        .collect();
    if as_json {
        say!("{}", Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        say!("this project declares no services and runs none");
        return Ok(ExitCode::SUCCESS);
    }
    let header = [
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "MEMORY",
        "PORTS",
        "READY",
        "CONTAINMENT",
    ];
    let table: Vec<[String; 9]> = rows.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for line in &table {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.len());
        }
    }
    let print = |cells: &[&str]| {
        let line: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        say!("{}", line.join("  ").trim_end());
    };
    print(&header);
    for line in &table {
        print(&line.each_ref().map(String::as_str));
    }
    Ok(ExitCode::SUCCESS)
}

/// One service's line, from what `status --json` says of it.
fn row(value: &Value) -> [String; 9] {
    let text = |value: &Value| match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let supervisor = &value["supervisor"];
    let running = value.get("uptime_secs").is_some();
    let restarts = value
        .get("restarts")
        .or_else(|| supervisor.get("restarts"))
        .map_or("-".to_owned(), text);
    let memory = value["memory_kib"]
        .as_u64()
        .map_or("-".to_owned(), |kib| format!("{:.1}M", kib as f64 / 1024.0));
    let ports = match value["ports"].as_array() {
        Some(ports) if !ports.is_empty() => ports.iter().map(text).collect::<Vec<_>>().join(","),
        _ => "-".to_owned(),
    };
    let containment = match value["containment"].as_str() {
        Some(text) if text.starts_with("cgroup") => "cgroup".to_owned(),
        Some(_) => "group+marker".to_owned(),
        None => "-".to_owned(),
    };
    [
        text(&value["name"]),
        text(&value["state"]),
        if value.get("pid").is_some() {
            text(&value["pid"])
        } else {
            "-".to_owned()
        },
        if running {
            super::short_duration(std::time::Duration::from_secs(
                value["uptime_secs"].as_u64().unwrap_or(0),
            ))
        } else {
            "-".to_owned()
        },
        restarts,
        memory,
        ports,
        supervisor.get("ready").map_or("-".to_owned(), text),
        containment,
    ]
}
