//! The exit codes, typed: every command but `status` ends with
//! [`Exit`]; `status` with the LSB's [`Status`]. clap's usage errors are 2.

use std::process::ExitCode;

/// How a command other than `status` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
    /// The command failed: bad settings, a service that would not start…
    Failure = 1,
    /// A process was not provably the project's: nothing was signalled.
    Refused = 5,
}

/// What `status` found (LSB init-script codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Status {
    /// Running.
    Running = 0,
    /// Dead, with a PID file left behind.
    Dead = 1,
    /// Not running.
    Stopped = 3,
    /// Unknown: an error, or a record that is not provably ours.
    Unknown = 4,
}

impl Exit {
    /// The code on the wire (the supervisor's report to `start`).
    pub(crate) fn code(self) -> u8 {
        self as u8
    }

    /// The exit of that code, if it is one.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        [Exit::Failure, Exit::Refused]
            .into_iter()
            .find(|exit| exit.code() == code)
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}
