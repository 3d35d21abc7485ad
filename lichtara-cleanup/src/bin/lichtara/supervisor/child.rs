//! The service's process: spawned in a session of its own, in its cgroup
//! leaf, with the run's marker, default signals, its output on the
//! supervisor's pipe and the name's lock inherited; and ended again if it
//! cannot be recorded.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use nix::sys::signal::SigSet;

use crate::Failure;
use crate::containment::{self, Containment};
use crate::project::{MARKER_VAR, Project};
use crate::protocol::SUPERVISOR_VAR;

/// Spawns the service: its own session, its cgroup leaf entered before
/// exec, the marker set, output into the pipe, the lock inherited.
pub(super) fn spawn(
    project: &Project,
    command: &[String],
    marker: &str,
    output: OwnedFd,
    cgroup_fd: Option<i32>,
    lock_fd: i32,
) -> Result<Child, Failure> {
    let output_err = output
        .try_clone()
        .map_err(|err| Failure::new(format!("cannot share the output pipe: {err}")))?;
    let mut child = Command::new(&command[0]);
    child
        .args(&command[1..])
        .current_dir(&project.dir)
        .env_remove(SUPERVISOR_VAR)
        .envs(&project.settings.env)
        .env(MARKER_VAR, marker)
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err);
    // SAFETY: between fork and exec only async-signal-safe system calls
    // run: sigaction(2) and sigprocmask(2), so that the service starts with
    // every signal at its default and none blocked (an ignored signal and
    // the mask are inherited across exec: the supervisor blocks its stop
    // signals, and whoever ran `start` may have ignored some); setsid(2); write(2) of
    // "0" to the leaf's cgroup.procs, so that the service and everything
    // it ever forks live in its cgroup; and fcntl(2) to let the service
    // inherit the lock so that it holds it for as long as it lives.
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
            let fd = std::os::fd::BorrowedFd::borrow_raw(lock_fd);
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            Ok(())
        });
    }
    // `child` (and with it this process's copies of the pipe's write end)
    // is dropped on return, so the pipe ends when the service's copies do.
    child
        .spawn()
        .map_err(|err| Failure::new(format!("cannot start `{}`: {err}", command[0])))
}

/// Ends a service that could not be recorded: our own unreaped child, and
/// its cgroup.
pub(super) fn end_unrecorded(mut child: Child, containment: &Containment) {
    let _ = child.kill();
    let _ = child.wait();
    if let Containment::Cgroup(leaf) = containment {
        let _ = leaf.kill();
        leaf.wait_empty(crate::terminate::KILL_WAIT);
        leaf.remove();
    }
}
