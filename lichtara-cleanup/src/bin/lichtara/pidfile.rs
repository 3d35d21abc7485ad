//! What a PID file holds, and reading it from text: pure (serde only), so
//! that the fuzz target `pid_file` (fuzz/) runs it as it is.

use serde::{Deserialize, Serialize};

/// One started process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub(crate) name: String,
    pub(crate) pid: i32,
    /// The process group to signal (the service leads its own group).
    pub(crate) pgid: i32,
    pub(crate) start_time: u64,
    pub(crate) boot_id: String,
    pub(crate) command: Vec<String>,
    /// Seconds since the Unix epoch.
    pub(crate) started_at: u64,
    /// The value of `LICHTARA_MARKER` its processes carry.
    pub(crate) marker: String,
    /// The user it runs as (records written before this field: the user
    /// who owns the PID file, which is checked to be the invoking one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) uid: Option<u32>,
    /// The supervisor that owns the service (`lichtara start`); none for
    /// `lichtara run`, which is its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) supervisor: Option<SupervisorId>,
}

/// Which process supervises a service: its PID and start time (clock
/// ticks since boot), so that a recycled PID is never taken for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SupervisorId {
    pub(crate) pid: i32,
    pub(crate) start_time: u64,
}

/// Reads a record; an error says why the text is not one.
pub(crate) fn parse(text: &str) -> Result<Record, String> {
    let record: Record = serde_json::from_str(text).map_err(|err| err.to_string())?;
    let supervisor = record.supervisor.map_or(2, |supervisor| supervisor.pid);
    if record.pid <= 1 || record.pgid <= 1 || supervisor <= 1 {
        return Err(format!(
            "pid {} / pgid {} / supervisor {supervisor} cannot be a service",
            record.pid, record.pgid
        ));
    }
    Ok(record)
}
