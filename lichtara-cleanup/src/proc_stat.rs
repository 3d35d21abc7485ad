//! Reading `/proc/<pid>/stat`. One reader for the library (which reaps
//! re-parented descendants with it) and the `lichtara` manager, which
//! includes this file as it is: the manager is a binary and reaches only
//! the library's public API. Processes come and go while we look: a
//! vanished one is an error or is left out.

use std::{fs, io};

/// The fields of `/proc/<pid>/stat` lichtara uses.
#[derive(Clone, Debug, PartialEq, Eq)]
// The library reads only some of them.
#[allow(dead_code)]
pub(crate) struct Stat {
    pub(crate) pid: i32,
    pub(crate) state: char,
    pub(crate) ppid: i32,
    pub(crate) pgrp: i32,
    pub(crate) session: i32,
    /// Clock ticks after boot at which the process started: with the boot
    /// id, what tells one process from a later one that reuses its PID.
    pub(crate) start_time: u64,
}

impl Stat {
    /// A zombie has exited; only its parent's wait is missing.
    pub(crate) fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses a `/proc/<pid>/stat` line. The command name sits in parentheses
/// and may hold anything, `)` and spaces included: fields are counted from
/// the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<Stat> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let pid = line[..open].trim().parse().ok()?;
    let fields: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    // fields[0] is field 3 (state); start_time is field 22.
    Some(Stat {
        pid,
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        session: fields.get(3)?.parse().ok()?,
        start_time: fields.get(19)?.parse().ok()?,
    })
}

/// The stat of one process.
pub(crate) fn stat(pid: i32) -> io::Result<Stat> {
    use std::io::Read;
    // procfs files say they are empty, so `fs::read_to_string` reads in
    // small probes; a stat line fits in one read of this size.
    let mut line = String::with_capacity(1024);
    fs::File::open(format!("/proc/{pid}/stat"))?.read_to_string(&mut line)?;
    parse_stat(&line).ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

/// The PIDs in `/proc` now.
pub(crate) fn pids() -> io::Result<Vec<i32>> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc")? {
        if let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// The stat of every process still there when read.
pub(crate) fn all_stats() -> io::Result<Vec<Stat>> {
    Ok(pids()?
        .into_iter()
        .filter_map(|pid| stat(pid).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_holds_parentheses_and_spaces() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            (stat.pid, stat.state, stat.ppid, stat.pgrp, stat.session),
            (4242, 'S', 1, 4242, 4242)
        );
        assert_eq!(stat.start_time, 987654);
    }

    #[test]
    fn garbage_is_not_a_stat() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S"), None);
        assert_eq!(
            parse_stat("nope (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"),
            None
        );
    }
}
