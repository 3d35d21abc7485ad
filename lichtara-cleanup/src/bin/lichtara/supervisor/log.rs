//! The service's log, `.lichtara/<name>.log`, written by its supervisor
//! from the service's stdout and stderr: capped at `log_max` and rotated
//! (to `<name>.log.000001`, `.000002` …, numbered in the order they were
//! written and never renamed again, the newest `log_keep` kept), between
//! two lines, so that no line is lost or split across files by a
//! rotation. A file exceeds `log_max` only to finish the line being
//! written, and never by more than `log_max`: a line longer than that (a
//! progress bar redrawn with `\r`, binary output) is cut there, so the logs
//! never hold more than `(log_keep + 1) × 2 × log_max`.
//!
//! When a write fails (a full disk), what could not be written is lost and
//! no rotation happens until a write succeeds again: rotating then would
//! push the kept history out for files that stay empty. The failure is
//! shown by `status`.

use std::fs::File;
use std::io::Write;

use crate::Failure;
use crate::state::{Access, StateDir};

/// The log of one service.
pub(crate) struct RotatingLog {
    state: StateDir,
    name: String,
    max: u64,
    keep: u32,
    file: File,
    /// Bytes in the current file.
    size: u64,
    /// Whether the last byte written ended a line (or nothing was written).
    at_line_start: bool,
    /// Bytes written since the supervisor started, for `status`.
    pub(crate) written: u64,
    /// Rotations since the supervisor started.
    pub(crate) rotations: u64,
    /// The number the next rotated log gets.
    next: u64,
    /// The last error writing or rotating, for `status`; cleared by the
    /// next write that succeeds.
    pub(crate) error: Option<String>,
    /// Whether the last write failed (no rotation until one succeeds).
    failing: bool,
}

/// The current log's file name.
pub(crate) fn current_name(name: &str) -> String {
    format!("{name}.log")
}

/// Rotated log `sequence`'s file name.
pub(crate) fn rotated_name(name: &str, sequence: u64) -> String {
    format!("{name}.log.{sequence:06}")
}

/// The rotated logs of `name` in the folder, oldest first: `(sequence,
/// file name)`. A rotated log keeps its name until it is removed, so a
/// reader can tell which file follows which from the names alone.
pub(crate) fn rotated(state: &StateDir, name: &str) -> Vec<(u64, String)> {
    let prefix = format!("{name}.log.");
    let mut found: Vec<(u64, String)> = state
        .names()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|file| {
            let digits = file.strip_prefix(&prefix)?;
            // Six digits at least: `<name>.log.1` of another scheme (or of
            // an earlier lichtara) is not one of ours, and is left alone.
            let valid = digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit());
            Some((digits.parse().ok().filter(|_| valid)?, file))
        })
        .collect();
    found.sort();
    found
}

impl RotatingLog {
    /// Opens (or creates) the current log of `name` to append to.
    pub(crate) fn open(state: &StateDir, name: &str, max: u64, keep: u32) -> Result<Self, Failure> {
        let file = open_current(state, name)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            state: state.clone(),
            name: name.to_owned(),
            max,
            keep,
            file,
            size,
            // A run killed in the middle of a line left it unfinished.
            at_line_start: size == 0 || ends_with_newline(state, name),
            written: 0,
            rotations: 0,
            next: rotated(state, name).last().map_or(1, |(last, _)| last + 1),
            error: None,
            failing: false,
        })
    }

    /// Appends what the service wrote, rotating between lines whenever the
    /// current file would pass `log_max`.
    pub(crate) fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.failing {
                // Try again, without rotating: see the module's comment.
                self.append(data);
                return;
            }
            let room = self.max.saturating_sub(self.size);
            if data.len() as u64 <= room {
                self.append(data);
                return;
            }
            let fits = &data[..room as usize];
            if let Some(end) = fits.iter().rposition(|byte| *byte == b'\n') {
                // Whole lines up to the cap, then a new file for the rest.
                self.append(&data[..=end]);
                data = &data[end + 1..];
                self.rotate();
            } else if self.at_line_start && self.size > 0 {
                // The next line does not fit: it starts the next file.
                self.rotate();
            } else {
                // In the middle of a line, or a line longer than the cap:
                // it is finished here, up to the hard cap, then the file is
                // rotated.
                let hard_room = (2 * self.max).saturating_sub(self.size) as usize;
                let reach = &data[..data.len().min(hard_room)];
                match reach.iter().position(|byte| *byte == b'\n') {
                    Some(end) => {
                        self.append(&data[..=end]);
                        data = &data[end + 1..];
                        self.rotate();
                    }
                    None if data.len() < hard_room => {
                        self.append(data);
                        return;
                    }
                    None => {
                        self.append(reach);
                        data = &data[reach.len()..];
                        self.rotate();
                    }
                }
            }
        }
    }

    /// A line of the supervisor's own (`-- lichtara: …`), on a line of its
    /// own even if the service left one unfinished.
    pub(crate) fn note(&mut self, text: &str) {
        let mut line = String::new();
        if !self.at_line_start {
            line.push('\n');
        }
        line.push_str("-- lichtara: ");
        line.push_str(text);
        line.push('\n');
        self.write(line.as_bytes());
    }

    fn append(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match self.file.write(data) {
                Ok(0) => {
                    self.failed(format!(
                        "cannot write the log: {}",
                        std::io::ErrorKind::WriteZero
                    ));
                    return;
                }
                Ok(written) => {
                    let done = &data[..written];
                    self.size += written as u64;
                    self.written += written as u64;
                    self.at_line_start = done.ends_with(b"\n");
                    self.failing = false;
                    self.error = None;
                    data = &data[written..];
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                // Full disk, say: what could not be written is lost, and the
                // supervisor keeps reading, so the service is never blocked.
                Err(err) => {
                    self.failed(format!("cannot write the log: {err}"));
                    return;
                }
            }
        }
    }

    /// The current log becomes the next rotated one, a new current one
    /// takes its place, and the rotated ones past the newest `log_keep`
    /// are removed. The old file gets its number first (a second link),
    /// then the new one is renamed over the current name: at no moment is
    /// the current log missing, nor the old one without its number.
    /// If the new one cannot be made, writing goes on in the old one.
    fn rotate(&mut self) {
        let result = (|| {
            let current = current_name(&self.name);
            let fresh = format!(".{}.log.new", self.name);
            let _ = self.state.file(&fresh).unlink();
            let new = self
                .state
                .file(&current)
                .create_new(&fresh)
                .map_err(|err| err.to_string())?;
            let _ = rustix::fs::fcntl_setfl(&new, rustix::fs::OFlags::APPEND);
            if self.keep > 0 {
                self.state
                    .link(&current, &rotated_name(&self.name, self.next))
                    .map_err(|err| err.to_string())?;
                self.next += 1;
            }
            // With nothing kept, the old file goes with this rename.
            self.state
                .rename(&fresh, &current)
                .map_err(|err| err.to_string())?;
            let all = rotated(&self.state, &self.name);
            let surplus = all.len().saturating_sub(self.keep as usize);
            for (_, gone) in &all[..surplus] {
                let _ = self.state.file(gone).unlink();
            }
            Ok::<File, String>(new)
        })();
        match result {
            Ok(file) => {
                self.file = file;
                self.size = 0;
                self.at_line_start = true;
                self.rotations += 1;
            }
            Err(why) => {
                // Keep writing where we are rather than lose lines; try
                // again at the next cap.
                self.error = Some(format!("cannot rotate the log: {why}"));
                self.size = 0;
            }
        }
    }

    fn failed(&mut self, why: String) {
        self.failing = true;
        self.error = Some(why);
    }
}

/// Whether the log left by an earlier run ends with a whole line.
fn ends_with_newline(state: &StateDir, name: &str) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(Some(file)) = state.file(&current_name(name)).open(Access::Read, "read") else {
        return true;
    };
    let length = file.metadata().map_or(0, |m| m.len());
    let mut last = [0u8; 1];
    length == 0
        || file
            .read_at(&mut last, length - 1)
            .is_ok_and(|n| n == 1 && last[0] == b'\n')
}

fn open_current(state: &StateDir, name: &str) -> Result<File, Failure> {
    let path = state.file(&current_name(name));
    let file = path
        .open(Access::Append, "write")?
        .ok_or_else(|| Failure::new(format!("cannot create {}", path.path().display())))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Folder(std::path::PathBuf);

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn folder(test: &str) -> (Folder, StateDir) {
        let path = std::env::temp_dir().join(format!("lichtara-log-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let state = StateDir::open(path.clone(), true).unwrap().unwrap();
        (Folder(path), state)
    }

    fn read(state: &StateDir, name: &str) -> String {
        std::fs::read_to_string(state.file(name).path()).unwrap_or_default()
    }

    #[test]
    fn rotation_happens_between_lines_and_loses_none() {
        let (_folder, state) = folder("between");
        let mut log = RotatingLog::open(&state, "s", 1024, 3).unwrap();
        let mut all = String::new();
        // Writes of odd sizes that cut lines anywhere.
        let mut pending = String::new();
        for line in 0..400 {
            pending.push_str(&format!("line {line:04} {}\n", "x".repeat(line % 17)));
            if pending.len() > 37 {
                let cut = pending.len() / 2 + 1;
                let rest = pending.split_off(cut);
                log.write(pending.as_bytes());
                all.push_str(&pending);
                pending = rest;
            }
        }
        log.write(pending.as_bytes());
        all.push_str(&pending);
        assert!(log.rotations >= 3, "{} rotations", log.rotations);
        let names = rotated(&state, "s");
        assert_eq!(names.len(), 3, "{names:?}: not log_keep of them");
        assert!(
            names.windows(2).all(|pair| pair[0].0 + 1 == pair[1].0),
            "{names:?}"
        );
        // Newest first: the current one, then the rotated ones from the
        // highest number down.
        let files: Vec<String> = std::iter::once(read(&state, "s.log"))
            .chain(names.iter().rev().map(|(_, file)| read(&state, file)))
            .collect();
        for (index, text) in files.iter().enumerate() {
            assert!(text.ends_with('\n'), "file {index} ends inside a line");
            assert!(
                text.len() <= 1024 + 40,
                "file {index}: {} bytes",
                text.len()
            );
        }
        // The kept files are the newest lines, whole and in order.
        let kept: String = files.iter().rev().map(String::as_str).collect();
        assert!(all.ends_with(&kept), "lines lost or reordered");
    }

    #[test]
    fn rotated_logs_are_told_by_their_six_digit_numbers_and_others_left_alone() {
        let (_folder, state) = folder("names");
        for name in [
            "s.log.000002",
            "s.log.000010",
            "s.log.1",
            "s.log.2",
            "s.log.0000x1",
            "t.log.000003",
        ] {
            std::fs::write(state.file(name).path(), "").unwrap();
        }
        let found: Vec<u64> = rotated(&state, "s").into_iter().map(|(n, _)| n).collect();
        assert_eq!(found, [2, 10]);
        let log = RotatingLog::open(&state, "s", 1024, 3).unwrap();
        assert_eq!(log.next, 11);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_finished_up_to_twice_the_cap_then_cut() {
        let (_folder, state) = folder("long");
        let mut log = RotatingLog::open(&state, "s", 1024, 1).unwrap();
        log.write(b"short\n");
        let long = format!("{}\n", "y".repeat(1500));
        log.write(long.as_bytes());
        // Finished whole (1.5 times the cap) in a file of its own.
        assert_eq!(read(&state, "s.log.000002"), long);
        assert_eq!(read(&state, "s.log"), "");
        // A line with no end in sight is cut at twice the cap.
        let endless = "z".repeat(5000);
        log.write(endless.as_bytes());
        log.write(b"\nafter\n");
        assert_eq!(read(&state, "s.log.000004").len(), 2048);
        assert!(!state.file("s.log.000003").path().exists(), "log_keep 1");
        assert_eq!(
            read(&state, "s.log"),
            format!("{}\nafter\n", "z".repeat(5000 - 4096))
        );
        log.note("stopped");
        assert!(read(&state, "s.log").ends_with("after\n-- lichtara: stopped\n"));
    }

    #[test]
    fn a_full_disk_loses_what_cannot_be_written_but_never_rotates_the_history_away() {
        let (_folder, state) = folder("full");
        let mut log = RotatingLog::open(&state, "s", 1024, 2).unwrap();
        log.write(format!("{}\n", "a".repeat(1019)).as_bytes());
        log.write(b"rotated\n");
        assert_eq!(log.rotations, 1);
        // The disk is full from here on.
        log.file = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        for _ in 0..50 {
            log.write(format!("{}\n", "b".repeat(700)).as_bytes());
        }
        assert_eq!(log.rotations, 1, "rotated while nothing could be written");
        assert!(
            log.error
                .as_deref()
                .unwrap()
                .contains("cannot write the log"),
            "{:?}",
            log.error
        );
        assert_eq!(
            read(&state, "s.log.000001").len(),
            1020,
            "the history was kept"
        );
        assert_eq!(read(&state, "s.log"), "rotated\n");
        assert_eq!(rotated(&state, "s").len(), 1);
    }

    #[test]
    fn a_log_left_inside_a_line_is_continued_on_a_line_of_its_own() {
        let (_folder, state) = folder("reopen");
        std::fs::write(state.file("s.log").path(), "cut sho").unwrap();
        let mut log = RotatingLog::open(&state, "s", 1 << 20, 3).unwrap();
        log.note("started");
        assert_eq!(read(&state, "s.log"), "cut sho\n-- lichtara: started\n");
    }

    #[test]
    fn a_note_after_an_unfinished_line_starts_a_line_of_its_own() {
        let (_folder, state) = folder("note");
        let mut log = RotatingLog::open(&state, "s", 1 << 20, 3).unwrap();
        log.write(b"prompt> ");
        log.note("ended");
        assert_eq!(read(&state, "s.log"), "prompt> \n-- lichtara: ended\n");
    }
}
