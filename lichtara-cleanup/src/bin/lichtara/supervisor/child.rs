//! The service's process: spawned in a session of its own, in its cgroup
//! leaf, with the run's marker, default signals, its output on the
//! supervisor's pipe and the name's lock inherited; and ended again if it
//! cannot be recorded.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::SigSet;

use crate::Failure;
use crate::commands::stop::GENERATION_VAR;
use crate::containment::{self, Leaf};
use crate::listeners::{Handoff, Held};
use crate::project::{MARKER_VAR, Project};
use crate::protocol::SUPERVISOR_VAR;

/// What a generation of the service is started with.
pub(super) struct Launch<'a> {
    pub(super) project: &'a Project,
    pub(super) command: &'a [String],
    pub(super) marker: &'a str,
    /// Its stdout and stderr.
    pub(super) output: OwnedFd,
    /// The leaf's `cgroup.procs`, open for writing.
    pub(super) cgroup_fd: Option<i32>,
    pub(super) lock_fd: i32,
    /// The held listeners, passed by socket activation.
    pub(super) held: &'a [Held],
    /// The supervisor's `NOTIFY_SOCKET` for the service, if it waits for
    /// `READY=1`.
    pub(super) notify: Option<&'a str>,
    /// Its generation's number (`LICHTARA_GENERATION`).
    pub(super) generation: u32,
    /// The environment the settings give it.
    pub(super) env: &'a std::collections::BTreeMap<String, String>,
    /// The watchdog's interval, given as `WATCHDOG_USEC`.
    pub(super) watchdog: Option<std::time::Duration>,
}

/// Spawns the service: its own session, its cgroup leaf entered before
/// exec, the marker set, output into the pipe, the lock inherited, and
/// the held listeners at descriptors 3, 4, … with `LISTEN_PID` its own.
pub(super) fn spawn(launch: Launch<'_>) -> Result<Child, Failure> {
    let Launch {
        project,
        command,
        marker,
        output,
        cgroup_fd,
        lock_fd,
        held,
        notify,
        generation,
        env,
        watchdog,
    } = launch;
    let output_err = output
        .try_clone()
        .map_err(|err| Failure::new(format!("cannot share the output pipe: {err}")))?;
    let mut child = Command::new(&command[0]);
    child
        .args(&command[1..])
        .current_dir(&project.dir)
        .env_remove(SUPERVISOR_VAR)
        .envs(env)
        .env(MARKER_VAR, marker)
        .env(GENERATION_VAR, generation.to_string())
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err);
    for var in crate::listeners::PROTOCOL_VARS {
        child.env_remove(var);
    }
    if let Some(notify) = notify {
        child.env("NOTIFY_SOCKET", notify);
    }
    // No WATCHDOG_PID: unknown before the fork, and not needed (a process
    // of the generation may ping; the supervisor judges the sender).
    let watchdog_usec = watchdog.map(|interval| interval.as_micros().to_string());
    if let Some(usec) = &watchdog_usec {
        child.env("WATCHDOG_USEC", usec);
    }
    // With listeners the child execs itself (so that it can write its own
    // PID into `LISTEN_PID`), with this same environment.
    let handoff = if held.is_empty() {
        None
    } else {
        let mut env = crate::listeners::service_environment(env, marker, notify);
        env.retain(|(key, _)| key != GENERATION_VAR);
        env.push((GENERATION_VAR.into(), generation.to_string().into()));
        if let Some(usec) = &watchdog_usec {
            env.push(("WATCHDOG_USEC".into(), usec.into()));
        }
        Some(Handoff::new(
            &project.dir,
            &command[0],
            command,
            &env,
            held,
            lock_fd,
        )?)
    };
    let fillers = handoff.as_ref().map(Handoff::reserve);
    // SAFETY: between fork and exec only async-signal-safe system calls
    // run: sigaction(2) and sigprocmask(2), so that the service starts with
    // every signal at its default and none blocked (an ignored signal and
    // the mask are inherited across exec: the supervisor blocks its stop
    // signals, and whoever ran `start` may have ignored some); setsid(2); write(2) of
    // "0" to the leaf's cgroup.procs, so that the service and everything
    // it ever forks live in its cgroup; fcntl(2) to let the service
    // inherit the lock so that it holds it for as long as it lives; and,
    // with listeners, `Handoff::apply` (fcntl, dup2, getpid, execve).
    unsafe {
        child.pre_exec(move || {
            // The kernel's own call, so that the C library's few reserved
            // signals are reset too; a zeroed kernel `sigaction` is
            // SIG_DFL with no flags and an empty mask on every Linux.
            let default = [0u64; 4];
            for signal in 1..=64 {
                if signal != nix::libc::SIGKILL && signal != nix::libc::SIGSTOP {
                    nix::libc::syscall(
                        nix::libc::SYS_rt_sigaction,
                        signal,
                        default.as_ptr(),
                        std::ptr::null_mut::<u64>(),
                        8usize,
                    );
                }
            }
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            )?;
            rustix::process::setsid()?;
            if let Some(procs) = cgroup_fd {
                containment::enter(std::os::fd::BorrowedFd::borrow_raw(procs))?;
            }
            if let Some(handoff) = &handoff {
                return Err(handoff.apply());
            }
            let fd = std::os::fd::BorrowedFd::borrow_raw(lock_fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    // `child` (and with it this process's copies of the pipe's write end)
    // is dropped on return, so the pipe ends when the service's copies do.
    let spawned = child
        .spawn()
        .map_err(|err| Failure::new(format!("cannot start `{}`: {err}", command[0])));
    drop(fillers);
    spawned
}

/// Ends a service that could not be recorded: our own unreaped child, and
/// its cgroup.
pub(super) fn end_unrecorded(mut child: Child, leaf: Option<&Leaf>) {
    let _ = child.kill();
    let _ = child.wait();
    if let Some(leaf) = leaf {
        let _ = leaf.kill();
        leaf.wait_empty(crate::terminate::KILL_WAIT);
        leaf.remove();
    }
}
