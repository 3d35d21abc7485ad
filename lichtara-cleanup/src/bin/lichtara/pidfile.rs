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
}

/// Reads a record; an error says why the text is not one.
pub(crate) fn parse(text: &str) -> Result<Record, String> {
    let record: Record = serde_json::from_str(text).map_err(|err| err.to_string())?;
    if record.pid <= 1 || record.pgid <= 1 {
        return Err(format!(
            "pid {} / pgid {} cannot be a service",
            record.pid, record.pgid
        ));
    }
    Ok(record)
}
