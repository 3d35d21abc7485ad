//! One file per command.

pub(crate) mod cleanup;
pub(crate) mod down;
pub(crate) mod logs;
pub(crate) mod ps;
pub(crate) mod reload;
pub(crate) mod restart;
pub(crate) mod run;
pub(crate) mod start;
pub(crate) mod status;
pub(crate) mod stop;
pub(crate) mod unit;
pub(crate) mod up;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::procfs::{self, Stat};
use crate::project::MARKER_VAR;
use crate::protocol::SUPERVISOR_VAR;

/// A process of this user that carries a marker of this project.
#[derive(Debug, Clone)]
pub(crate) struct Marked {
    pub(crate) stat: Stat,
    pub(crate) marker: String,
}

/// Every process of the current user in `all` (a snapshot of `/proc`)
/// whose marker starts with `prefix`, except PID 1, this process and its
/// ancestors. Processes that vanish or cannot be read while we look are
/// skipped.
pub(crate) fn marked(prefix: &str, all: &[Stat]) -> Vec<Marked> {
    marked_and_supervisors(prefix, all).0
}

/// [`marked`], and beside it the supervisors whose marker (in
/// `LICHTARA_SUPERVISES`) starts with `prefix`: one read of each
/// environment for both.
pub(crate) fn marked_and_supervisors(prefix: &str, all: &[Stat]) -> (Vec<Marked>, Vec<Marked>) {
    let me = std::process::id() as i32;
    let uid = rustix::process::getuid().as_raw();
    let mut ancestors = vec![me];
    let mut cursor = me;
    while let Some(parent) = all.iter().find(|s| s.pid == cursor).map(|s| s.ppid) {
        if parent <= 1 || ancestors.contains(&parent) {
            break;
        }
        ancestors.push(parent);
        cursor = parent;
    }
    let (mut marked, mut supervisors) = (Vec::new(), Vec::new());
    let candidates = all
        .iter()
        .filter(|stat| stat.pid > 1 && !ancestors.contains(&stat.pid) && !stat.is_zombie())
        .filter(|stat| procfs::uid(stat.pid).is_ok_and(|owner| owner == uid));
    for stat in candidates {
        let Ok([marker, supervises]) = procfs::environ_vars(stat.pid, [MARKER_VAR, SUPERVISOR_VAR])
        else {
            continue;
        };
        for (found, into) in [(marker, &mut marked), (supervises, &mut supervisors)] {
            if let Some(marker) = found.filter(|marker| marker.starts_with(prefix)) {
                into.push(Marked {
                    stat: stat.clone(),
                    marker,
                });
            }
        }
    }
    (marked, supervisors)
}

/// The services `.lichtara/` holds a record or a recorded failure of.
pub(crate) fn recorded_names(
    project: &crate::project::Project,
) -> Result<Vec<String>, crate::Failure> {
    let Some(state) = project.existing_state_dir()? else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = state
        .names()?
        .into_iter()
        .filter_map(|file| {
            let name = file
                .strip_suffix(".pid")
                .or_else(|| file.strip_suffix(".failed"))?;
            crate::config::valid_name(name).ok()?;
            Some(name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A short human duration: `3s`, `2m 5s`, `1h 4m`.
pub(crate) fn short_duration(duration: std::time::Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

/// A span measured in milliseconds: `42ms`, `1.234s`.
pub(crate) fn millis(duration: std::time::Duration) -> String {
    match duration.as_millis() {
        ms @ 0..1000 => format!("{ms}ms"),
        ms => format!("{}.{:03}s", ms / 1000, ms % 1000),
    }
}
