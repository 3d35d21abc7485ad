//! `lichtara cleanup`: processes of this project that outlived their
//! service. Found by the marker environment variable every process started
//! by `start` or `run` inherits — never by name or command line.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use super::Marked;
use crate::containment::Leaf;
use crate::ownership::{self, Claim, Proof};
use crate::project::{MARKER_VAR, Project};
use crate::protocol::supervises;
use crate::record::{self, Liveness, Record};
use crate::{Failure, procfs, terminate};

/// A marked process, or one in a service's cgroup, with no live service
/// to belong to.
pub(crate) struct Orphan {
    pub(crate) process: Marked,
    /// The cgroup leaf it was found in, when it was found there.
    pub(crate) leaf: Option<Leaf>,
    pub(crate) why: String,
    /// A supervisor whose run has no record (its PID file or its state
    /// folder was removed): asked to stop its run by SIGTERM. Its marker
    /// is in `process.marker`.
    pub(crate) supervisor: bool,
}

pub(crate) fn run(
    project: &Project,
    dry_run: bool,
    yes: bool,
    timeout: Duration,
) -> Result<ExitCode, Failure> {
    let orphans = find(project)?;
    if orphans.is_empty() {
        say!("no orphaned processes of this project");
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&orphans);
    if dry_run {
        return Ok(ExitCode::SUCCESS);
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            say!("not a terminal: only listed; run `lichtara cleanup --yes` to end them");
            return Ok(ExitCode::SUCCESS);
        }
        crate::output::prompt(format_args!(
            "end these {} process(es)? [y/N] ",
            orphans.len()
        ));
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            say!("nothing ended");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let uid = ownership::current_uid();
    let mut pinned = Vec::new();
    let mut supervisors = Vec::new();
    for orphan in orphans.iter().filter(|orphan| orphan.supervisor) {
        // Pinned, then proved by what it is: its start time, its user, and
        // the supervisor's marker it carries.
        let stat = &orphan.process.stat;
        let Some(process) = terminate::Pinned::open(stat.pid) else {
            continue;
        };
        let proved = procfs::stat(stat.pid).is_ok_and(|now| now.start_time == stat.start_time)
            && procfs::uid(stat.pid).is_ok_and(|owner| owner == uid)
            && supervises(stat.pid).is_some_and(|marker| marker == orphan.process.marker);
        if proved {
            supervisors.push(process);
        }
    }
    // A supervisor stops its run (stop signal, timeout, SIGKILL) before it
    // exits: it gets that long, and then some, before SIGKILL.
    let stopped = terminate::terminate(
        supervisors,
        rustix::process::Signal::TERM,
        project.config.longest_stop_timeout() + terminate::KILL_WAIT * 2,
    );
    for orphan in orphans.iter().filter(|orphan| !orphan.supervisor) {
        let claim = Claim {
            marker: &orphan.process.marker,
            leaf: orphan.leaf.as_ref(),
            uid,
        };
        match ownership::prove(
            orphan.process.stat.pid,
            orphan.process.stat.start_time,
            claim,
        ) {
            Proof::Proven(process) => pinned.push(process),
            Proof::Gone => {}
            // In a cgroup: ended with it below, whatever it runs as.
            Proof::Refused(_) if orphan.leaf.is_some() => {}
            Proof::Refused(refusal) => note!("left alone: {refusal}"),
        }
    }
    let outcome = terminate::terminate(pinned, project.config.defaults().stop_signal()?, timeout);
    // What the cgroups of services that are not running still hold after
    // that (a worker that dropped its privileges, say, which the uid proof
    // leaves alone) is ended with the cgroup, as stop ends it.
    let mut leaf_killed = 0;
    for leaf in orphans.iter().filter_map(|orphan| orphan.leaf.as_ref()) {
        if leaf.populated() {
            leaf_killed += leaf.members().len();
            let _ = leaf.kill();
            leaf.wait_empty(terminate::KILL_WAIT);
        }
    }
    remove_empty_leaves(
        project,
        &supervised(project, &procfs::all_stats().unwrap_or_default()),
    );
    let by_term = outcome.by_term + stopped.by_term;
    let by_kill = outcome.by_kill.len() + stopped.by_kill.len() + leaf_killed;
    say!(
        "ended {} process(es): {by_term} after SIGTERM, {by_kill} after SIGKILL",
        by_term + by_kill
    );
    if outcome.survivors.is_empty() && stopped.survivors.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::new(format!(
            "processes {:?} survived SIGKILL",
            outcome.survivors
        )))
    }
}

/// The orphans of `project`: marked processes of this user whose run has
/// no live record.
pub(crate) fn find(project: &Project) -> Result<Vec<Orphan>, Failure> {
    let records = records(project)?;
    let live: Vec<&Record> = records
        .iter()
        .filter(|record| matches!(record.liveness(project, &record.name), Liveness::Running(_)))
        .collect();
    let all = procfs::all_stats().unwrap_or_default();
    // A run whose supervisor lives is not orphaned, whatever its record
    // says: it is starting (not yet recorded), or being stopped.
    let (marked, live_supervisors) = super::marked_and_supervisors(&project.marker_prefix(), &all);
    let supervised: Vec<String> = live_supervisors
        .iter()
        .map(|process| process.marker.clone())
        .collect();
    let mut orphans: Vec<Orphan> = marked
        .into_iter()
        .filter(|process| !live.iter().any(|record| record.marker == process.marker))
        .filter(|process| !supervised.contains(&process.marker))
        .map(|process| {
            let name = process.marker.split('/').nth(1).unwrap_or("?").to_owned();
            let mut why = if live.iter().any(|record| record.name == name) {
                format!("left over from an earlier run of `{name}`")
            } else if records.iter().any(|record| record.name == name) {
                format!("`{name}` is dead (stale PID file)")
            } else {
                format!("`{name}` is not running")
            };
            if process.stat.ppid == 1 {
                why.push_str("; re-parented to PID 1");
            }
            Orphan {
                process,
                leaf: None,
                why,
                supervisor: false,
            }
        })
        .collect();
    // What the cgroups of services that are not running still hold: a
    // daemon that called setsid and cleared its environment is found here.
    for (name, leaf) in Leaf::of_project(project) {
        if live.iter().any(|record| record.name == name)
            || supervised
                .iter()
                .any(|marker| marker.split('/').nth(1) == Some(name.as_str()))
        {
            continue;
        }
        for pid in leaf.members() {
            let Some(stat) = all.iter().find(|stat| stat.pid == pid) else {
                continue;
            };
            if let Some(orphan) = orphans
                .iter_mut()
                .find(|orphan| orphan.process.stat.pid == pid)
            {
                orphan.leaf = Some(leaf.clone());
                continue;
            }
            let marker = procfs::environ_var(pid, MARKER_VAR).ok().flatten();
            orphans.push(Orphan {
                process: Marked {
                    stat: stat.clone(),
                    marker: marker.unwrap_or_default(),
                },
                leaf: Some(leaf.clone()),
                why: format!("in the cgroup of `{name}`, which is not running"),
                supervisor: false,
            });
        }
    }
    // Supervisors whose run no record names: nothing else can reach them
    // (without a record, `stop` finds one only by its socket).
    let state = project.existing_state_dir()?;
    for process in live_supervisors {
        if records.iter().any(|record| record.marker == process.marker) {
            continue;
        }
        let name = process.marker.split('/').nth(1).unwrap_or("?").to_owned();
        // One that holds its name's lock is starting (no record yet), or
        // lost only its PID file: `stop` and `status` reach it by its
        // socket. Only one cut off from its state folder is an orphan.
        let reachable = state.as_ref().is_some_and(|state| {
            procfs::holds(process.stat.pid, record::lock_path(state, &name).path())
        });
        if reachable {
            continue;
        }
        orphans.push(Orphan {
            process,
            leaf: None,
            why: format!(
                "the supervisor of `{name}`, with no PID file: SIGTERM makes it stop its run"
            ),
            supervisor: true,
        });
    }
    Ok(orphans)
}

/// The markers of this project's live supervisors (of this user).
fn supervised(project: &Project, all: &[procfs::Stat]) -> Vec<String> {
    supervisors(project, all)
        .into_iter()
        .map(|process| process.marker)
        .collect()
}

/// This project's live supervisors (of this user), with their markers.
fn supervisors(project: &Project, all: &[procfs::Stat]) -> Vec<Marked> {
    super::marked_and_supervisors(&project.marker_prefix(), all).1
}

/// Removes the cgroup leaves of services that are not running and hold
/// nothing any more.
fn remove_empty_leaves(project: &Project, supervised: &[String]) {
    for (name, leaf) in Leaf::of_project(project) {
        if supervised
            .iter()
            .any(|marker| marker.split('/').nth(1) == Some(name.as_str()))
        {
            // Starting: its supervisor made the leaf for it.
            continue;
        }
        let running = records(project).is_ok_and(|records| {
            records.iter().any(|record| {
                record.name == name
                    && matches!(record.liveness(project, &record.name), Liveness::Running(_))
            })
        });
        if !running && !leaf.populated() {
            leaf.remove();
        }
    }
}

/// Every PID file of the project.
fn records(project: &Project) -> Result<Vec<Record>, Failure> {
    let Some(state) = project.existing_state_dir()? else {
        return Ok(Vec::new());
    };
    let mut records = Vec::new();
    for name in state.names()? {
        if name.ends_with(".pid") && !name.starts_with('.') {
            // A file we cannot trust names no live service: its processes
            // show as orphans, which is what the user needs to see.
            match record::read(&state.file(&name)) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => {}
                Err(failure) => note!("{}", failure.message()),
            }
        }
    }
    Ok(records)
}

fn print_table(orphans: &[Orphan]) {
    say!(
        "{:>7}  {:>7}  {:>8}  {:>9}  {:<40}  WHY",
        "PID",
        "PARENT",
        "AGE",
        "MEMORY",
        "COMMAND"
    );
    for orphan in orphans {
        let stat = &orphan.process.stat;
        let age = procfs::age(stat.start_time).map_or_else(|| "?".into(), super::short_duration);
        let memory = procfs::rss_kib(stat.pid).map_or_else(
            || "?".into(),
            |kib| format!("{:.1} MiB", kib as f64 / 1024.0),
        );
        let mut command = procfs::cmdline(stat.pid);
        if command.chars().count() > 40 {
            command = command.chars().take(39).collect::<String>() + "…";
        }
        say!(
            "{:>7}  {:>7}  {:>8}  {:>9}  {:<40}  {}",
            stat.pid,
            stat.ppid,
            age,
            memory,
            command,
            orphan.why
        );
    }
}
