//! `lichtara stop`: identity first, then SIGTERM to the group, a bounded
//! wait on pidfds, SIGKILL for what is left.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::Failure;
use crate::project::Project;
use crate::record::{self, Liveness, Record};
use crate::terminate::{self, Pinned};

/// What `stop` found and did.
pub(crate) enum StopOutcome {
    NotRunning,
    Stale(String),
    Done {
        record: Record,
        elapsed: Duration,
        killed: usize,
    },
}

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    timeout: Option<Duration>,
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let timeout = project.stop_timeout(timeout)?;
    match stop(project, &name, timeout)? {
        StopOutcome::NotRunning => println!("`{name}` is not running"),
        StopOutcome::Stale(why) => println!(
            "`{name}` was not running: removed its stale PID file ({why}); nothing was signalled"
        ),
        StopOutcome::Done {
            record,
            elapsed,
            killed,
        } => {
            let how = if killed > 0 {
                format!("; {killed} process(es) needed SIGKILL")
            } else {
                String::new()
            };
            println!(
                "stopped `{name}` (pid {}) in {:.0?}{how}",
                record.pid, elapsed
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops service `name`, waiting up to `timeout` after SIGTERM.
pub(crate) fn stop(
    project: &Project,
    name: &str,
    timeout: Duration,
) -> Result<StopOutcome, Failure> {
    let Some(state) = project.existing_state_dir()? else {
        return Ok(StopOutcome::NotRunning);
    };
    let pid_path = record::pid_path(&state, name);
    let Some(record) = record::read(&pid_path)? else {
        return Ok(StopOutcome::NotRunning);
    };
    if let Liveness::Stale(why) = record.liveness() {
        record::remove(&pid_path)?;
        return Ok(StopOutcome::Stale(why));
    }
    let Some(leader) = terminate::pin(record.pid, record.start_time) else {
        // It ended, or changed, between the two looks: stale after all.
        record::remove(&pid_path)?;
        return Ok(StopOutcome::Stale(format!(
            "process {} ended as we looked",
            record.pid
        )));
    };
    let started = Instant::now();
    let mut targets: Vec<Pinned> = vec![leader];
    // Everything of this run: its process group, and whatever left the
    // group but still carries this run's marker.
    let uid = rustix::process::getuid().as_raw();
    // One snapshot of /proc serves both searches.
    let all = crate::procfs::all_stats().unwrap_or_default();
    for stat in &all {
        if stat.pid != record.pid
            && stat.pgrp == record.pgid
            && crate::procfs::uid(stat.pid).is_ok_and(|owner| owner == uid)
        {
            targets.extend(terminate::pin(stat.pid, stat.start_time));
        }
    }
    for process in super::marked(&record.marker, &all) {
        if process.marker == record.marker
            && process.stat.pgrp != record.pgid
            && process.stat.pid != record.pid
        {
            targets.extend(terminate::pin(process.stat.pid, process.stat.start_time));
        }
    }
    let group = crate::procfs::stat(record.pid)
        .ok()
        .filter(|stat| stat.pgrp == record.pgid)
        .map(|stat| stat.pgrp);
    let outcome = terminate::terminate(targets, group, timeout);
    if !outcome.survivors.is_empty() {
        return Err(Failure::new(format!(
            "processes {:?} of `{name}` survived SIGKILL (stuck in the kernel?); the PID file is kept",
            outcome.survivors
        )));
    }
    record::remove(&pid_path)?;
    Ok(StopOutcome::Done {
        record,
        elapsed: started.elapsed(),
        killed: outcome.by_kill.len(),
    })
}
