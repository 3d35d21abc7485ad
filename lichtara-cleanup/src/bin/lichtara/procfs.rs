//! What `/proc` says about processes. Every reader returns an error or
//! `None` for a process that vanished: processes come and go while we look.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::time::Duration;

// One `/proc/<pid>/stat` reader for the manager and the library (which
// reaps re-parented descendants with it): the file is shared as it is.
#[path = "../../proc_stat.rs"]
mod proc_stat;

pub(crate) use proc_stat::{Stat, all_stats, stat};

/// This boot's id: a PID and start time are only comparable within a boot.
pub(crate) fn boot_id() -> io::Result<String> {
    Ok(fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

/// The real user id of `pid`.
pub(crate) fn uid(pid: i32) -> io::Result<u32> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no Uid in /proc/{pid}/status")))
}

/// Resident memory in KiB.
pub(crate) fn rss_kib(pid: i32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The command line, as the process sees its arguments.
pub(crate) fn cmdline(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    args.join(" ")
}

/// The values of `names` in the environment `pid` started with, from one
/// read of it.
pub(crate) fn environ_vars<const N: usize>(
    pid: i32,
    names: [&str; N],
) -> io::Result<[Option<String>; N]> {
    use std::io::Read;
    let mut raw = Vec::with_capacity(16 * 1024);
    fs::File::open(format!("/proc/{pid}/environ"))?.read_to_end(&mut raw)?;
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    for entry in raw.split(|byte| *byte == 0) {
        for (name, value) in names.iter().zip(values.iter_mut()) {
            if value.is_none()
                && let Some(rest) = entry.strip_prefix(name.as_bytes())
                && let Some(found) = rest.strip_prefix(b"=")
            {
                *value = Some(String::from_utf8_lossy(found).into_owned());
            }
        }
    }
    Ok(values)
}

/// The value of `name` in the environment `pid` started with.
pub(crate) fn environ_var(pid: i32, name: &str) -> io::Result<Option<String>> {
    use std::io::Read;
    // procfs files say they are empty: read in large steps, not probes.
    let mut raw = Vec::with_capacity(16 * 1024);
    fs::File::open(format!("/proc/{pid}/environ"))?.read_to_end(&mut raw)?;
    let prefix = format!("{name}=");
    Ok(raw
        .split(|byte| *byte == 0)
        .find_map(|entry| entry.strip_prefix(prefix.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned()))
}

/// Every PID in `/proc`.
/// How long ago a process with this start time started.
pub(crate) fn age(start_time: u64) -> Option<Duration> {
    let uptime: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    let started = start_time as f64 / ticks as f64;
    Some(Duration::from_secs_f64((uptime - started).max(0.0)))
}

/// The descendants of `root` (not `root` itself), by parent links.
pub(crate) fn descendants(root: i32, all: &[Stat]) -> Vec<i32> {
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            all.iter()
                .filter(|s| s.ppid == parent && s.pid != root)
                .map(|s| s.pid),
        );
        next += 1;
    }
    found.remove(0);
    found
}

/// Whether `pid` holds `path` open (the file there now: a removed one
/// shows as "… (deleted)").
pub(crate) fn holds(pid: i32, path: &std::path::Path) -> bool {
    let Ok(target) = fs::canonicalize(path) else {
        return false;
    };
    fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|link| link == target))
    })
}

/// Processes of this user holding `path` open: who holds a lock file.
pub(crate) fn holders(path: &std::path::Path) -> Vec<i32> {
    let Ok(target) = fs::canonicalize(path) else {
        return Vec::new();
    };
    let me = rustix::process::getuid().as_raw();
    let mut found = Vec::new();
    for stat in all_stats().unwrap_or_default() {
        if uid(stat.pid).is_ok_and(|owner| owner != me) {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{}/fd", stat.pid)) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|link| link == target))
        {
            found.push(stat.pid);
        }
    }
    found
}

/// Stats of every process still readable.
/// TCP ports on which any of `pids` listens.
pub(crate) fn listening_ports(pids: &[i32]) -> Vec<u16> {
    let mut inodes = HashSet::new();
    for pid in pids {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                if let Some(inode) = target
                    .to_str()
                    .and_then(|t| t.strip_prefix("socket:["))
                    .and_then(|t| t.strip_suffix(']'))
                    .and_then(|t| t.parse::<u64>().ok())
                {
                    inodes.insert(inode);
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address is field 1 ("ADDR:PORT" in hex), st field 3
            // (0A = LISTEN), inode field 9.
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            if *state != "0A"
                || !inode
                    .parse()
                    .is_ok_and(|inode: u64| inodes.contains(&inode))
            {
                continue;
            }
            if let Some(port) = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id() as i32;
        let stat = stat(me).unwrap();
        assert_eq!(stat.pid, me);
        assert!(stat.start_time > 0);
        assert!(rss_kib(me).unwrap() > 0);
        assert_eq!(uid(me).unwrap(), rustix::process::getuid().as_raw());
        assert!(!boot_id().unwrap().is_empty());
    }

    #[test]
    fn descendants_follow_parent_links() {
        let s = |pid, ppid| Stat {
            pid,
            state: 'S',
            ppid,
            pgrp: pid,
            session: pid,
            start_time: 1,
        };
        let all = [s(10, 1), s(11, 10), s(12, 11), s(13, 1), s(14, 10)];
        let mut found = descendants(10, &all);
        found.sort_unstable();
        assert_eq!(found, [11, 12, 14]);
    }
}
