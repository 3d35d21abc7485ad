//! The machine-readable report: `LICHTARA_REPORT=/path/report.json`
//! writes it before exit, and with the `serde` feature the report and its
//! parts implement `serde::Serialize` in the same shape.
//!
//! Schema version 2 (`report.schema.json` beside the crate's manifest is
//! its JSON Schema; any change to the shape bumps the version):
//!
//! ```text
//! {
//!   "schema_version": 2,
//!   "complete": true,   // false: ended mid-sequence (watchdog, second
//!                       // signal); `hooks` then holds those still running
//!                       // and `main.outcome` is "unknown"
//!   "trigger": { "kind": "signal" | "main_returned" | "main_failed"
//!                        | "main_panicked" | "requested" | "task_failed",
//!                "signal": "SIGTERM" | null, "signal_number": 15 | null,
//!                "task": "consumer" | null },   // the task, for task_failed
//!   "main": { "outcome": "success" | "failure" | "panicked" | "dropped"
//!                      | "abandoned" | "timed_out" | "refused" | "unknown",
//!             "code": 3 | null, "message": "…" | null },  // the panic or the error
//!   "deadline_ms": 10000.0, "deadline_passed": false,
//!   "elapsed_ms": 12.345, "exit_code": 0,
//!   "hooks": [ { "name": "app::flush", "order": 1, "timeout_ms": 5000.0 | null,
//!                "outcome": "ok" | "error" | "panicked" | "timed_out" | "not_run"
//!                         | "interrupted" (unfinished reports: a second signal),
//!                "error": "…" | null, "elapsed_ms": 0.5, "detail": "…" | null } ],
//!   "tasks": [ { "name": "consumer",   // tracked tasks running at the trigger
//!                "outcome": "ok" | "error" | "panicked" | "timed_out",
//!                "error": "…" | null, "elapsed_ms": 1.5 } ]   // [] when unfinished
//! }
//!
//! Version 2 added `tasks`, the trigger's `task` and `main`'s `timed_out`.
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{HookReport, MainOutcome, Outcome, ShutdownReport, Trigger, millis};

/// The version of the shape below.
pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The variable that names where the report is written.
const REPORT_VAR: &str = "LICHTARA_REPORT";

#[derive(Serialize)]
struct ReportView<'a> {
    schema_version: u32,
    /// `false` when the process was ended mid-sequence (the watchdog at
    /// the deadline, a second signal): `hooks` then lists only those
    /// still running, and `main` is `unknown`.
    complete: bool,
    trigger: TriggerView,
    main: MainView<'a>,
    deadline_ms: f64,
    deadline_passed: bool,
    elapsed_ms: f64,
    exit_code: i32,
    hooks: Vec<HookView<'a>>,
    tasks: Vec<TaskView<'a>>,
}

#[derive(Serialize)]
struct TaskView<'a> {
    name: &'a str,
    outcome: &'static str,
    error: Option<&'a str>,
    elapsed_ms: f64,
}

#[derive(Serialize)]
struct TriggerView {
    kind: &'static str,
    signal: Option<&'static str>,
    signal_number: Option<i32>,
    task: Option<&'static str>,
}

#[derive(Serialize)]
struct MainView<'a> {
    outcome: &'static str,
    code: Option<u8>,
    message: Option<&'a str>,
}

#[derive(Serialize)]
struct HookView<'a> {
    name: &'a str,
    order: i32,
    timeout_ms: Option<f64>,
    outcome: &'static str,
    error: Option<&'a str>,
    elapsed_ms: f64,
    detail: Option<&'a str>,
}

fn trigger_view(trigger: Trigger) -> TriggerView {
    let (kind, signal, signal_number, task) = match trigger {
        Trigger::Signal { name, number } => ("signal", Some(name), Some(number), None),
        Trigger::MainReturned => ("main_returned", None, None, None),
        Trigger::MainFailed => ("main_failed", None, None, None),
        Trigger::MainPanicked => ("main_panicked", None, None, None),
        Trigger::Requested => ("requested", None, None, None),
        Trigger::TaskFailed { name } => ("task_failed", None, None, Some(name)),
    };
    TriggerView {
        kind,
        signal,
        signal_number,
        task,
    }
}

fn main_view(main: &MainOutcome) -> MainView<'_> {
    let (outcome, code, message) = match main {
        MainOutcome::Success => ("success", None, None),
        MainOutcome::Failure { code, error } => ("failure", Some(*code), error.as_deref()),
        MainOutcome::Panicked { message } => ("panicked", None, Some(message.as_str())),
        MainOutcome::Dropped => ("dropped", None, None),
        MainOutcome::Abandoned => ("abandoned", None, None),
        MainOutcome::TimedOut => ("timed_out", None, None),
        MainOutcome::Refused => ("refused", None, None),
    };
    MainView {
        outcome,
        code,
        message,
    }
}

fn outcome_word(outcome: &Outcome) -> (&'static str, Option<&str>) {
    match outcome {
        Outcome::Ok => ("ok", None),
        Outcome::Error(error) => ("error", Some(error)),
        Outcome::Panicked(message) => ("panicked", Some(message)),
        Outcome::TimedOut => ("timed_out", None),
        Outcome::NotRun => ("not_run", None),
    }
}

fn hook_view(hook: &HookReport) -> HookView<'_> {
    let (outcome, error) = outcome_word(hook.outcome());
    HookView {
        name: &hook.name,
        order: hook.order,
        timeout_ms: hook.timeout().map(millis),
        outcome,
        error,
        elapsed_ms: millis(hook.elapsed()),
        detail: hook.detail(),
    }
}

fn report_view(report: &ShutdownReport) -> ReportView<'_> {
    ReportView {
        schema_version: SCHEMA_VERSION,
        complete: true,
        trigger: trigger_view(report.trigger),
        main: main_view(&report.main),
        deadline_ms: millis(report.deadline),
        deadline_passed: report.deadline_passed,
        elapsed_ms: millis(report.elapsed),
        exit_code: report.exit_code(),
        hooks: report.hooks.iter().map(hook_view).collect(),
        tasks: report
            .tasks
            .iter()
            .map(|task| {
                let (outcome, error) = outcome_word(task.outcome());
                TaskView {
                    name: task.name(),
                    outcome,
                    error,
                    elapsed_ms: millis(task.elapsed()),
                }
            })
            .collect(),
    }
}

impl ShutdownReport {
    /// The report as JSON, in the documented schema.
    pub(crate) fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string_pretty(&report_view(self)).unwrap_or_default()
    }
}

#[cfg(feature = "serde")]
mod impls {
    use serde::{Serialize, Serializer};

    use super::*;

    impl Serialize for ShutdownReport {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            report_view(self).serialize(serializer)
        }
    }

    impl Serialize for HookReport {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            hook_view(self).serialize(serializer)
        }
    }

    impl Serialize for Trigger {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            trigger_view(*self).serialize(serializer)
        }
    }

    impl Serialize for MainOutcome {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            main_view(self).serialize(serializer)
        }
    }

    impl Serialize for Outcome {
        /// The word alone: `"ok"`, `"error"`, `"timed_out"`, …; a hook's
        /// report carries the error beside it.
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_str(outcome_word(self).0)
        }
    }
}

/// Writes the report where `LICHTARA_REPORT` says, if it says: whole or
/// not at all (a temporary file beside it, renamed over it). A failure is
/// logged; it does not change the exit code.
pub(crate) fn write_if_asked(report: &ShutdownReport) {
    write_json_if_asked(|| report.to_json());
}

/// What is known when the process must end mid-sequence (the watchdog at
/// the deadline, a second signal): the trigger, the deadline, the exit code
/// and the hooks still running; `complete` is `false`.
pub(crate) fn write_unfinished_if_asked(exit_code: i32, deadline_passed: bool) {
    // At the deadline the running hooks timed out; at a second signal
    // they were cut short before theirs.
    let (outcome, detail) = if deadline_passed {
        ("timed_out", "still running at the global deadline")
    } else {
        (
            "interrupted",
            "still running when a second signal ended the process",
        )
    };
    write_json_if_asked(|| {
        let lifecycle = crate::lifecycle::process();
        let (trigger, elapsed) = lifecycle.triggered().map_or(
            (Trigger::Requested, std::time::Duration::ZERO),
            |(trigger, at)| (trigger, at.elapsed()),
        );
        let running = lifecycle.progress().still_running();
        let view = ReportView {
            schema_version: SCHEMA_VERSION,
            complete: false,
            trigger: trigger_view(trigger),
            main: MainView {
                outcome: "unknown",
                code: None,
                message: None,
            },
            deadline_ms: millis(lifecycle.budget()),
            deadline_passed,
            elapsed_ms: millis(elapsed),
            exit_code,
            hooks: running
                .iter()
                .map(|hook| HookView {
                    name: &hook.name,
                    order: hook.order,
                    timeout_ms: hook.timeout.map(millis),
                    outcome,
                    error: None,
                    elapsed_ms: millis(hook.elapsed),
                    detail: Some(detail),
                })
                .collect(),
            tasks: Vec::new(),
        };
        serde_json::to_string_pretty(&view).unwrap_or_default()
    });
}

fn write_json_if_asked(json: impl FnOnce() -> String) {
    let Some(path) = std::env::var_os(REPORT_VAR).filter(|path| !path.is_empty()) else {
        return;
    };
    let path = PathBuf::from(path);
    match write_atomically(&path, json().as_bytes()) {
        Ok(()) => tracing::debug!(path = %path.display(), "report written"),
        Err(err) => tracing::warn!(
            path = %path.display(),
            error = %err,
            "cannot write the report {REPORT_VAR} asks for"
        ),
    }
}

/// Writes `contents` to `path`: for a regular file (or none yet), whole
/// or not at all, through a temporary file beside it renamed over it; a
/// symbolic link is followed, so the file it names is replaced. Anything
/// else (a FIFO, a device, `/dev/stdout`) is written in place, never
/// replaced; so is a file that cannot be renamed over (a bind mount, such
/// as Kubernetes' `/dev/termination-log`).
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    // `/dev/stdout`, `/proc/self/fd/1`: the process's own descriptor,
    // whatever it is (a pipe, a terminal, a log file appended to). Opened
    // through the kernel's link, appended to, never renamed over.
    if names_a_descriptor(path) {
        return write_in_place(path, contents, Placement::Append);
    }
    let target = follow_links(path)?;
    match std::fs::metadata(&target) {
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            return write_in_place(&target, contents, Placement::Append);
        }
        _ => {}
    }
    match write_beside(&target, contents) {
        Err(err) if renaming_refused(&err) => write_in_place(&target, contents, Placement::Replace),
        written => written,
    }
}

/// Whether `path`, or a link on the way to its file, names one of this
/// process's descriptors.
fn names_a_descriptor(path: &Path) -> bool {
    let magic = |path: &Path| {
        path.starts_with("/proc/self/fd")
            || path.starts_with("/dev/fd")
            || ["/dev/stdout", "/dev/stderr", "/dev/stdin"]
                .iter()
                .any(|name| path == Path::new(name))
            || path
                .strip_prefix("/proc")
                .ok()
                .and_then(|rest| rest.components().nth(1))
                .is_some_and(|second| second.as_os_str() == "fd")
    };
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        if magic(&path) {
            return true;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(&path) {
                Ok(target) => {
                    path = match path.parent() {
                        Some(dir) if target.is_relative() => dir.join(target),
                        _ => target,
                    };
                }
                Err(_) => return false,
            },
            _ => return false,
        }
    }
    false
}

/// How a report written in place treats what is there.
enum Placement {
    /// A stream (a FIFO, a device, a descriptor): written after it.
    Append,
    /// A file that cannot be renamed over: its contents replaced.
    Replace,
}

/// The file `path` names once its symbolic links are followed, also when
/// the last one names a file not made yet.
fn follow_links(path: &Path) -> std::io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // As the kernel's own limit on links in a row.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(path),
        }
    }
    Err(std::io::Error::other("too many symbolic links"))
}

/// Whether a rename failed because the target cannot be replaced, though
/// it can be written.
fn renaming_refused(err: &std::io::Error) -> bool {
    // EBUSY (a mount point) and EXDEV (another file system).
    matches!(err.raw_os_error(), Some(16 | 18))
}

fn write_in_place(path: &Path, contents: &[u8], placement: Placement) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    match placement {
        Placement::Append => options.append(true),
        Placement::Replace => options.write(true).truncate(true),
    };
    // Never blocks: a FIFO with no reader is an error (ENXIO), not an exit
    // that waits forever for one.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits());
    }
    let mut file = match options.open(path) {
        Err(err) if err.raw_os_error() == Some(6) => {
            return Err(std::io::Error::other("a FIFO with no reader"));
        }
        opened => opened?,
    };
    // Opened without waiting; written as any output is, blocking: a
    // reader that is there drains a report larger than the pipe.
    #[cfg(unix)]
    {
        use nix::fcntl::{FcntlArg, OFlag, fcntl};
        let flags = OFlag::from_bits_truncate(fcntl(&file, FcntlArg::F_GETFL)?);
        fcntl(&file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    }
    file.write_all(contents)?;
    file.write_all(b"\n")
}

fn write_beside(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = (|| {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(contents)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_json_has_every_field_of_the_schema() {
        let report = ShutdownReport {
            trigger: Trigger::Signal {
                name: "SIGTERM",
                number: 15,
            },
            main: MainOutcome::Success,
            hooks: vec![{
                let mut hook = HookReport::new(
                    "a \"quoted\" name".into(),
                    -1,
                    Some(Duration::from_millis(1500)),
                );
                hook.set_outcome(Outcome::Error("disk full".into()));
                hook.set_elapsed(Duration::from_micros(2500));
                hook
            }],
            tasks: vec![crate::report::TaskReport {
                name: "consumer".into(),
                outcome: Outcome::TimedOut,
                elapsed: Duration::from_micros(1500),
            }],
            deadline: Duration::from_secs(10),
            deadline_passed: false,
            elapsed: Duration::from_millis(3),
        };
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        assert_eq!(json["schema_version"], 2);
        let task = &json["tasks"][0];
        assert_eq!(
            (&task["name"], &task["outcome"], &task["elapsed_ms"]),
            (&"consumer".into(), &"timed_out".into(), &1.5.into())
        );
        assert!(json["trigger"]["task"].is_null());
        assert_eq!(json["complete"], true);
        assert_eq!(json["trigger"]["kind"], "signal");
        assert_eq!(json["trigger"]["signal_number"], 15);
        assert_eq!(json["main"]["outcome"], "success");
        assert_eq!(json["deadline_ms"], 10000.0);
        assert_eq!(json["exit_code"], 1);
        let hook = &json["hooks"][0];
        assert_eq!(hook["name"], "a \"quoted\" name");
        assert_eq!(hook["timeout_ms"], 1500.0);
        assert_eq!(hook["outcome"], "error");
        assert_eq!(hook["error"], "disk full");
        // The fixed 2,500 µs given above, in milliseconds: no clock is read.
        assert_eq!(hook["elapsed_ms"], 2.5);
        assert!(hook["detail"].is_null());
    }

    #[test]
    fn a_report_is_written_whole_over_the_old_one() {
        let dir = std::env::temp_dir().join(format!("lichtara-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let path = dir.join("report.json");
        std::fs::write(&path, "old").expect("old report");
        write_atomically(&path, b"{}").expect("written");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "{}\n");
        // Nothing left beside it.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }

    #[test]
    fn a_link_is_followed_and_a_fifo_is_written_not_replaced() {
        use std::os::unix::fs::FileTypeExt;

        let dir =
            std::env::temp_dir().join(format!("lichtara-report-special-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("real")).expect("temporary directory");
        let real = dir.join("real/report.json");
        let link = dir.join("link.json");
        std::os::unix::fs::symlink(&real, &link).expect("a link");
        write_atomically(&link, b"{}").expect("written through the link");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&real).expect("read"), "{}\n");

        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        // No reader: an error at once, never an exit that waits for one.
        let refused = write_atomically(&fifo, b"{}").expect_err("no reader");
        assert!(refused.to_string().contains("no reader"), "{refused}");
        // A reader: written into it, and the FIFO stays a FIFO.
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
            .open(&fifo)
            .expect("a reader");
        write_atomically(&fifo, b"{}").expect("written into the FIFO");
        let mut read = String::new();
        reader.read_to_string(&mut read).expect("read the FIFO");
        assert_eq!(read, "{}\n");
        assert!(
            std::fs::metadata(&fifo)
                .expect("fifo")
                .file_type()
                .is_fifo()
        );

        // The process's own descriptor (`/dev/stdout` redirected to a log):
        // appended to, never renamed over.
        let log = dir.join("app.log");
        std::fs::write(&log, "READY\n").expect("a log");
        let held = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("held");
        let through = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&held));
        assert!(names_a_descriptor(Path::new(&through)));
        assert!(names_a_descriptor(Path::new("/dev/stdout")));
        assert!(!names_a_descriptor(&log));
        write_atomically(Path::new(&through), b"{}").expect("appended");
        assert_eq!(std::fs::read_to_string(&log).expect("read"), "READY\n{}\n");
        drop(held);
        std::fs::remove_dir_all(&dir).expect("cleaned up");
    }
}
