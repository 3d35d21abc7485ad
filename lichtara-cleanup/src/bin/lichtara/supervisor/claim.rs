//! A name's claim: why a start is refused while another holds the name's
//! lock (named by what holds it), and, once the lock is taken, what to do
//! with a record an earlier run left.

use super::Reporter;
use crate::Failure;
use crate::procfs;
use crate::project::Project;
use crate::protocol::{Report, supervises};
use crate::record::{self, Liveness, Record};
use crate::state::{StateDir, StateFile};

/// Why `name` cannot be started while its lock is held by another.
pub(crate) fn locked(project: &Project, state: &StateDir, name: &str) -> Failure {
    let existing = match record::read(&record::pid_path(state, name)) {
        Ok(existing) => existing,
        Err(failure) => return failure,
    };
    let holders = procfs::holders(record::lock_path(state, name).path());
    let prefix = format!("{}{name}/", project.marker_prefix());
    let supervisor = holders
        .iter()
        .copied()
        .find(|pid| supervises(*pid).is_some_and(|marker| marker.starts_with(&prefix)));
    let liveness = existing
        .as_ref()
        .map(|record| record.liveness(project, name));
    match (existing, liveness, supervisor) {
        (Some(record), Some(Liveness::Running(_)), _) => already_running(&record, name),
        (Some(record), Some(Liveness::Foreign(_)), _) => Failure::new(format!(
            "`{name}` is held by a run (pid {}) recorded for another project directory: if this directory was moved since it started, move it back to stop it (projects are told apart by where they are)",
            record.pid
        )),
        (_, _, Some(pid)) => Failure::new(format!(
            "`{name}` is held by its supervisor (pid {pid}), which is starting it or ending its last run; see `lichtara status -N {name}`"
        )),
        _ => Failure::new(format!(
            "`{name}` is locked by processes of an earlier run{}; see `lichtara cleanup --dry-run`",
            holders
                .iter()
                .map(|pid| format!(" (pid {pid}: `{}`)", procfs::cmdline(*pid)))
                .collect::<String>()
        )),
    }
}

/// With the name's lock held: a stale or foreign record is removed
/// (nothing signalled), a live one refused.
pub(super) fn clear_the_way(
    project: &Project,
    name: &str,
    pid_path: &StateFile,
    report: &mut Reporter,
) -> Result<(), Failure> {
    let Some(record) = record::read(pid_path)? else {
        return Ok(());
    };
    match record.liveness(project, name) {
        Liveness::Running(_) => Err(already_running(&record, name)),
        Liveness::Stale(why) => {
            report.send(&Report::Note(format!(
                "removing the stale PID file of `{name}` ({why}); nothing was signalled"
            )));
            record::remove(pid_path)
        }
        Liveness::Foreign(why) => {
            report.send(&Report::Note(format!(
                "replacing a PID file that is not this project's ({why}); nothing was signalled"
            )));
            record::remove(pid_path)
        }
        Liveness::Refused(why) => Err(Failure::refused(format!(
            "{}: {why}; nothing was signalled. Inspect it, then remove the PID file",
            pid_path.path().display()
        ))),
    }
}

fn already_running(record: &Record, name: &str) -> Failure {
    match record.supervisor {
        Some(supervisor) if !crate::client::supervisor_alive(record) => Failure::new(format!(
            "`{name}` is running (pid {}) without its supervisor (pid {} is gone): its output is no longer logged (its next write to stdout or stderr fails). `lichtara stop -N {name}`, then start it again",
            record.pid, supervisor.pid
        )),
        _ => Failure::new(format!("`{name}` is already running (pid {})", record.pid)),
    }
}
