//! `lichtara stop`: ownership proved first (`ownership`), then the stop
//! signal to each proved process of the run, a bounded wait on pidfds,
//! SIGKILL for what is left.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::Failure;
use crate::client::Connection;
use crate::containment::{Containment, Leaf};
use crate::ownership::{self, Claim, Proof};
use crate::project::Project;
use crate::record::{self, Liveness, Record};
use crate::terminate::{self, Pinned};

/// What `stop` found and did.
pub(crate) enum StopOutcome {
    NotRunning,
    Stale(String),
    Done {
        /// The service's main process.
        pid: i32,
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
    let timeout = project.service(&name).stop_timeout(timeout)?;
    match stop(project, &name, timeout)? {
        StopOutcome::NotRunning => say!("`{name}` is not running"),
        StopOutcome::Stale(why) => say!(
            "`{name}` was not running: removed its stale PID file ({why}); nothing was signalled"
        ),
        StopOutcome::Done {
            pid,
            elapsed,
            killed,
        } => {
            let how = if killed > 0 {
                format!("; {killed} process(es) needed SIGKILL")
            } else {
                String::new()
            };
            say!("stopped `{name}` (pid {pid}) in {elapsed:.0?}{how}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Stops service `name`: its stop signal to every process of its run
/// proved ours, up to `timeout` for them to end, then SIGKILL.
pub(crate) fn stop(
    project: &Project,
    name: &str,
    timeout: Duration,
) -> Result<StopOutcome, Failure> {
    let stop_signal = project.service(name).stop_signal()?;
    let Some(state) = project.existing_state_dir()? else {
        return Ok(StopOutcome::NotRunning);
    };
    let pid_path = record::pid_path(&state, name);
    let Some(record) = record::read(&pid_path)? else {
        // No record, but perhaps a supervisor (its PID file was removed
        // by hand): found by its socket, and proved by what it carries.
        return match Connection::find(project, &state, name) {
            Ok(connection) => {
                note!("`{name}` has no PID file, but its supervisor answers: asking it to stop");
                let stopped = connection.stop(timeout).map_err(Failure::new)?;
                Ok(StopOutcome::Done {
                    pid: stopped.pid,
                    elapsed: Duration::from_millis(stopped.elapsed_ms),
                    killed: stopped.killed,
                })
            }
            Err(_) => Ok(StopOutcome::NotRunning),
        };
    };
    let liveness = record.liveness(project, name);
    if let Liveness::Foreign(why) | Liveness::Refused(why) = &liveness {
        return Err(refuse(name, why, &pid_path));
    }
    // Its supervisor does the stop, if it lives; it removes the record.
    if record.supervisor.is_some() {
        match Connection::open(&state, name, &record).and_then(|c| c.stop(timeout)) {
            Ok(stopped) => {
                return Ok(StopOutcome::Done {
                    pid: stopped.pid,
                    elapsed: Duration::from_millis(stopped.elapsed_ms),
                    killed: stopped.killed,
                });
            }
            // Alive but not answering on its socket (too busy, or the
            // socket is not its own): SIGTERM asks it for the same stop.
            Err(why) if crate::client::supervisor_alive(&record) => {
                note!(
                    "cannot ask the supervisor of `{name}` over its socket ({why}); asking it by SIGTERM"
                );
                let started = Instant::now();
                match crate::client::stop_by_signal(&record, timeout) {
                    Ok(()) => {
                        return Ok(StopOutcome::Done {
                            pid: record.pid,
                            elapsed: started.elapsed(),
                            killed: 0,
                        });
                    }
                    Err(why) => note!("{why}; stopping `{name}` from the record"),
                }
            }
            Err(why) => note!(
                "the supervisor of `{name}` did not stop it ({why}); stopping it from the record{}",
                if matches!(
                    Containment::of(project, name, false),
                    Containment::Cgroup(_)
                ) {
                    " and the cgroup"
                } else {
                    ""
                }
            ),
        }
    }
    let leader = match liveness {
        Liveness::Running(leader) => leader,
        Liveness::Stale(why) => {
            record::remove(&pid_path)?;
            return Ok(StopOutcome::Stale(why));
        }
        Liveness::Foreign(why) | Liveness::Refused(why) => {
            return Err(refuse(name, &why, &pid_path));
        }
    };
    let started = Instant::now();
    let leaf = match Containment::of(project, name, false) {
        // The leaf is computed from the project and name, never read from
        // the record: whatever is in it is the service's, even if the
        // leader moved itself out.
        Containment::Cgroup(leaf) if leaf.exists() => Some(leaf),
        _ => None,
    };
    let claim = Claim::of(&record, leaf.as_ref());
    let killed = end_run(
        leaf.as_ref(),
        vec![leader],
        &record,
        claim,
        stop_signal,
        timeout,
        Reach::Run,
    )
    .map_err(|survivors| {
        Failure::new(format!(
            "processes {survivors:?} of `{name}` are still running after SIGKILL (stuck in the kernel, or forking faster than they end); the PID file is kept"
        ))
    })?;
    // Only the record this stop proved: a start that ran meanwhile wrote
    // its own. The dead supervisor's socket goes with it.
    if record::remove_if_still(&pid_path, &record)? {
        let socket = crate::protocol::socket_name(name);
        if state.is_socket(&socket) {
            let _ = state.file(&socket).unlink();
        }
    }
    Ok(StopOutcome::Done {
        pid: record.pid,
        elapsed: started.elapsed(),
        killed,
    })
}

fn refuse(name: &str, why: &str, pid_path: &crate::state::StateFile) -> Failure {
    Failure::refused(format!(
        "not stopping `{name}`: {why}; nothing was signalled and {} is left as it is",
        pid_path.path().display()
    ))
}

/// What an end reaches besides its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// The whole run: its cgroup (or process group), and every process
    /// that carries its marker.
    Run,
    /// Generation N of it: its cgroup, or its process group and the
    /// processes that carry the run's marker with `LICHTARA_GENERATION=N`
    /// (the marker alone is shared by the generation that replaces it).
    Generation(u32),
}

/// The variable that tells a service's generations apart: set by its
/// supervisor for each one, inherited by all its descendants.
pub(crate) const GENERATION_VAR: &str = "LICHTARA_GENERATION";

/// Ends the run of `record`, starting with `targets` (its main process,
/// pinned): in its cgroup leaf where it has one, else by proof. Returns how
/// many needed SIGKILL, or the survivors.
pub(crate) fn end_run(
    leaf: Option<&Leaf>,
    targets: Vec<Pinned>,
    record: &Record,
    claim: Claim<'_>,
    stop_signal: Signal,
    timeout: Duration,
    reach: Reach,
) -> Result<usize, Vec<i32>> {
    match leaf {
        Some(leaf) => stop_contained(leaf, targets, record, claim, stop_signal, timeout, reach),
        None => stop_by_proof(targets, record, claim, stop_signal, timeout, reach),
    }
}

/// In its cgroup: the stop signal to every member (and to marked processes
/// outside it); their pidfds say when they have ended, and the leaf's
/// `populated 0` (inotify on `cgroup.events`) when whatever they forked
/// meanwhile has too; `cgroup.kill` past the timeout; the leaf removed.
/// Returns how many needed SIGKILL, or the survivors.
fn stop_contained(
    leaf: &Leaf,
    mut targets: Vec<Pinned>,
    record: &Record,
    claim: Claim<'_>,
    stop_signal: Signal,
    timeout: Duration,
    reach: Reach,
) -> Result<usize, Vec<i32>> {
    let started = Instant::now();
    let pinned: Vec<i32> = targets.iter().map(|target| target.pid).collect();
    targets.extend(members(record, claim, &pinned, reach));
    for target in &targets {
        target.signal(stop_signal);
    }
    // The pidfds first: readable the moment each exits (it has left the
    // cgroup by then), where the kernel spaces cgroup.events
    // notifications 10 ms apart.
    let stubborn = terminate::wait_exit(targets, timeout);
    let left = timeout.saturating_sub(started.elapsed());
    let emptied = stubborn.is_empty() && leaf.wait_empty(left);
    let mut killed = 0;
    if !emptied {
        killed = leaf.members().len().max(stubborn.len());
        let _ = leaf.kill();
        // Marked processes outside the leaf (none, unless one was moved).
        for process in &stubborn {
            process.signal(Signal::KILL);
        }
    }
    let survivors: Vec<i32> = terminate::wait_exit(stubborn, terminate::KILL_WAIT)
        .iter()
        .map(|p| p.pid)
        .collect();
    if !leaf.wait_empty(terminate::KILL_WAIT) {
        return Err(leaf.members());
    }
    if !survivors.is_empty() {
        return Err(survivors);
    }
    leaf.remove();
    Ok(killed)
}

/// Without a cgroup: the stop signal to each proved process of the run,
/// in rounds, so that what it forks while it stops (which carries its
/// marker) is found by the next look. Bounded: a run that forks faster
/// than it dies is ended by SIGKILL within the first rounds.
fn stop_by_proof(
    mut targets: Vec<Pinned>,
    record: &Record,
    claim: Claim<'_>,
    stop_signal: Signal,
    timeout: Duration,
    reach: Reach,
) -> Result<usize, Vec<i32>> {
    let mut killed = 0;
    for _ in 0..4 {
        let pinned: Vec<i32> = targets.iter().map(|target| target.pid).collect();
        targets.extend(members(record, claim, &pinned, reach));
        if targets.is_empty() {
            break;
        }
        let outcome = terminate::terminate(std::mem::take(&mut targets), stop_signal, timeout);
        if !outcome.survivors.is_empty() {
            return Err(outcome.survivors);
        }
        killed += outcome.by_kill.len();
    }
    // A run that forked faster than the rounds ended it is not stopped.
    let left: Vec<i32> = members(record, claim, &[], reach)
        .iter()
        .map(|p| p.pid)
        .collect();
    if !left.is_empty() {
        return Err(left);
    }
    Ok(killed)
}

/// The processes of `record`'s run besides `pinned`, proved: those in its
/// process group or its cgroup leaf, and those that left the group but
/// carry its marker (only with [`Reach::Run`]). A group member that fails
/// the proof is left alone, and named.
fn members(record: &Record, claim: Claim<'_>, pinned: &[i32], reach: Reach) -> Vec<Pinned> {
    // One snapshot of /proc serves both searches.
    let all = crate::procfs::all_stats().unwrap_or_default();
    let marked = super::marked(&record.marker, &all);
    let mut proved = Vec::new();
    let in_leaf = claim.leaf.map(Leaf::members).unwrap_or_default();
    for stat in &all {
        if pinned.contains(&stat.pid) || stat.is_zombie() {
            continue;
        }
        let in_group = stat.pgrp == record.pgid || in_leaf.contains(&stat.pid);
        let carries_marker = marked
            .iter()
            .any(|process| process.stat.pid == stat.pid && process.marker == record.marker)
            && match reach {
                Reach::Run => true,
                Reach::Generation(number) => crate::procfs::environ_var(stat.pid, GENERATION_VAR)
                    .ok()
                    .flatten()
                    .is_some_and(|value| value == number.to_string()),
            };
        if !in_group && !carries_marker {
            continue;
        }
        match ownership::prove(stat.pid, stat.start_time, claim) {
            Proof::Proven(process) => proved.push(process),
            Proof::Gone => {}
            Proof::Refused(refusal) => note!("left alone: {refusal}"),
        }
    }
    proved
}
