//! `lichtara start`: launches the service's supervisor (`supervisor`),
//! detached in a session of its own, and relays what it reports until the
//! service has started (past its start grace) or failed to. Ctrl-C here
//! ends only this command: the supervisor, in its own session, carries on
//! and leaves a recorded running service, or nothing.

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::ServeArgs;
use crate::exit::Exit;
use crate::project::Project;
use crate::protocol::{Report, SUPERVISOR_VAR};
use crate::{Failure, record};

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    serve: &ServeArgs,
    command: &[String],
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let command = project.service(&name).command(command)?;
    let pid = start(project, &name, serve, &command)?;
    say!("{pid}");
    Ok(ExitCode::SUCCESS)
}

/// Starts `command` as service `name` under a supervisor of its own;
/// returns the service's PID once it is ready.
pub(crate) fn start(
    project: &Project,
    name: &str,
    serve: &ServeArgs,
    command: &[String],
) -> Result<i32, Failure> {
    // Every setting is checked before anything is locked or spawned.
    let service = project.service(name);
    let listeners = service.listeners(&serve.listen)?;
    let ready = service.ready(serve.ready.as_deref())?;
    let ready_timeout = service.ready_timeout(serve.ready_timeout)?;
    // The name's lock, taken here and held by the supervisor from its
    // first instruction on: no moment of a start holds nothing.
    let state = project.state_dir()?;
    let Some(lock) = record::lock(&state, name)? else {
        return Err(crate::supervisor::locked(project, &state, name));
    };
    // A failure the restart policy gave up on is over: this is the
    // `start` it waited for.
    let _ = record::failed_path(&state, name).unlink();
    let lock_fd = lock.file.as_raw_fd();
    let exe = std::env::current_exe()
        .map_err(|err| Failure::new(format!("cannot find this program: {err}")))?;
    let (report, report_in) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|err| Failure::new(format!("cannot make a pipe: {err}")))?;
    let report_fd = report_in.as_raw_fd();
    let marker = format!("{}/{name}/{}", project.id, instance_token());
    let mut supervisor = Command::new(exe);
    supervisor
        .arg("--dir")
        .arg(&project.dir)
        .arg("__supervise")
        .arg("--name")
        .arg(name)
        .arg("--report-fd")
        .arg(report_fd.to_string())
        .arg("--lock-fd")
        .arg(lock_fd.to_string())
        .arg("--ready")
        .arg(ready.arg())
        .arg("--ready-timeout")
        .arg(format!("{}ms", ready_timeout.as_millis()));
    for listener in &listeners {
        supervisor.arg("--listen").arg(listener.pair());
    }
    supervisor
        .arg("--")
        .args(command)
        .env(SUPERVISOR_VAR, &marker)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe system calls between fork and exec:
    // setsid(2), so that the supervisor outlives this terminal and its
    // Ctrl-C; fcntl(2), so that it inherits the report pipe and the lock.
    unsafe {
        supervisor.pre_exec(move || {
            rustix::process::setsid()?;
            for fd in [report_fd, lock_fd] {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let mut child = supervisor
        .spawn()
        .map_err(|err| Failure::new(format!("cannot start the supervisor: {err}")))?;
    drop(supervisor);
    drop(report_in);
    // The supervisor holds it now.
    drop(lock);
    // Its reports, until the last one; the pipe's end without one means
    // the supervisor died.
    for line in BufReader::new(std::fs::File::from(report)).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Report>(&line) {
            Ok(Report::Note(text)) => note!("{text}"),
            Ok(Report::Started { pid, containment }) => {
                note!(
                    "started `{name}` (pid {pid}, supervisor {}), contained by {containment}",
                    child.id()
                );
                return Ok(pid);
            }
            Ok(Report::Failed { message, code }) => {
                let _ = child.wait();
                return Err(match Exit::from_code(code) {
                    Some(Exit::Refused) => Failure::refused(message),
                    _ => Failure::new(message),
                });
            }
            Err(_) => note!("the supervisor said: {line}"),
        }
    }
    let status = child
        .wait()
        .map_or_else(|err| err.to_string(), |status| status.to_string());
    Err(Failure::new(format!(
        "the supervisor of `{name}` ended before it reported ({status}); see `lichtara status -N {name}` and `lichtara cleanup --dry-run`"
    )))
}

/// Tells one run of a service from the next.
fn instance_token() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}", nanos ^ (u64::from(std::process::id()) << 40))
}
