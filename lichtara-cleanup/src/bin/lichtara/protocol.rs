//! What the CLI and a service's supervisor say to each other, over the
//! supervisor's socket `.lichtara/<name>.sock`: one JSON request line from
//! the CLI, one JSON reply line from the supervisor. And what a supervisor
//! reports to the `start` that launched it, over a pipe, until the service
//! has started or failed to.

use serde::{Deserialize, Serialize};

/// The environment variable that marks a supervisor: the marker of the
/// service it supervises. `cleanup` leaves a service alone while a live
/// supervisor of this project carries its marker (it is starting, or
/// being stopped), and never counts the supervisor itself as an orphan.
pub(crate) const SUPERVISOR_VAR: &str = "LICHTARA_SUPERVISES";

/// The supervisor marker process `pid` carries, if it is a supervisor
/// (and its environment can be read).
pub(crate) fn supervises(pid: i32) -> Option<String> {
    crate::procfs::environ_var(pid, SUPERVISOR_VAR)
        .ok()
        .flatten()
}

/// The socket's name in the state folder.
pub(crate) fn socket_name(name: &str) -> String {
    format!("{name}.sock")
}

/// A request to a supervisor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum Request {
    /// How the service is.
    Status,
    /// Stop the service (stop signal, up to `timeout_ms`, then SIGKILL) and
    /// answer when nothing of it is left; the supervisor then exits.
    Stop { timeout_ms: u64 },
    /// Start the next generation beside the running one, wait until it
    /// is ready, then stop the old one; if it is not ready, end it and
    /// keep the old one. Answered when it is over either way.
    /// With `command`, the new generation runs it (a changed
    /// `Lichtara.toml`), and it is recorded once that one is ready.
    Reload {
        #[serde(default)]
        command: Option<Vec<String>>,
    },
    /// Stop the running generation (up to `timeout_ms`), then start the
    /// next one (running `command` if given) while the held listeners keep
    /// their backlog; answered once it is ready or has failed.
    Restart {
        timeout_ms: u64,
        #[serde(default)]
        command: Option<Vec<String>>,
    },
}

/// A supervisor's answer to [`Request::Reload`] and [`Request::Restart`]
/// that succeeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReloadReply {
    /// The generation now serving, and its main process.
    pub(crate) generation: u32,
    pub(crate) pid: i32,
    /// The generation it replaced.
    pub(crate) old_pid: i32,
    /// From the request to the new generation's readiness.
    pub(crate) ready_ms: u64,
    /// From the request to the old generation's end.
    pub(crate) old_gone_ms: u64,
    /// How the old one ended: `exit code 0`.
    pub(crate) old_ended: String,
    /// How many of the old one's processes needed SIGKILL.
    pub(crate) killed: usize,
}

/// A supervisor's answer to [`Request::Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StatusReply {
    pub(crate) supervisor: i32,
    pub(crate) pid: i32,
    /// `starting`, `running`, `reloading`, `restarting` or `stopping`.
    pub(crate) phase: String,
    pub(crate) containment: String,
    /// Bytes of output logged since the supervisor started.
    pub(crate) logged_bytes: u64,
    pub(crate) log_rotations: u64,
    /// Why the log is not being written, if it is not (a full disk).
    #[serde(default)]
    pub(crate) log_error: Option<String>,
    /// The generation serving (1 until the first reload).
    #[serde(default)]
    pub(crate) generation: u32,
    /// The held listeners, `NAME=ADDR`.
    #[serde(default)]
    pub(crate) listeners: Vec<String>,
    /// `none`, `notify` or `port=ADDR`.
    #[serde(default)]
    pub(crate) ready: String,
    /// How long a reload waits for readiness, and for the old generation.
    #[serde(default)]
    pub(crate) ready_timeout_ms: u64,
    #[serde(default)]
    pub(crate) stop_timeout_ms: u64,
    /// The restart policy: `no`, `on-failure`, `always`.
    #[serde(default)]
    pub(crate) restart: String,
    /// Restarts the policy made since the supervisor started.
    #[serde(default)]
    pub(crate) restarts: u32,
    /// How the last generation that ended by itself ended.
    #[serde(default)]
    pub(crate) last_exit: Option<String>,
}

/// A supervisor's answer to [`Request::Stop`], once the service has ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StopReply {
    pub(crate) pid: i32,
    pub(crate) elapsed_ms: u64,
    /// How many processes needed SIGKILL.
    pub(crate) killed: usize,
    /// How the service's main process ended: `exit code 0`, `signal 15`.
    pub(crate) ended: String,
    /// Whether it had ended on its own before the request came.
    pub(crate) by_itself: bool,
}

/// Any reply.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Status(StatusReply),
    Stopped(StopReply),
    Reloaded(ReloadReply),
    /// The request was refused or failed.
    Error(String),
}

/// What a supervisor reports to `start`, one line each.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Report {
    /// Something `start` should tell the user.
    Note(String),
    /// The service runs, past its start grace.
    Started { pid: i32, containment: String },
    /// It did not start; nothing of it is left.
    Failed { message: String, code: u8 },
}
