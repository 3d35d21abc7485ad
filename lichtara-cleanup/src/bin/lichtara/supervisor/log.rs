//! The service's log, `.lichtara/<name>.log`, written by its supervisor
//! from the service's stdout and stderr: capped at `log_max` and rotated
//! (`<name>.log.1` … `<name>.log.<log_keep>`, the oldest dropped), only
//! ever between two lines, so that no line is lost or split across files
//! by a rotation. A file exceeds `log_max` by at most one line: the one
//! that was being written when the cap was reached, or one longer than
//! the cap.

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
    /// The last error writing or rotating, reported once per kind.
    failed: Option<String>,
}

/// The file name of rotated log `index` (0: the current one).
pub(crate) fn file_name(name: &str, index: u32) -> String {
    match index {
        0 => format!("{name}.log"),
        _ => format!("{name}.log.{index}"),
    }
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
            // A supervisor ends its log with a line of its own.
            at_line_start: true,
            written: 0,
            rotations: 0,
            failed: None,
        })
    }

    /// Appends what the service wrote, rotating between lines whenever the
    /// current file would pass `log_max`.
    pub(crate) fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
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
                // it is finished here, then the file is rotated.
                match data.iter().position(|byte| *byte == b'\n') {
                    Some(end) => {
                        self.append(&data[..=end]);
                        data = &data[end + 1..];
                        self.rotate();
                    }
                    None => {
                        self.append(data);
                        return;
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

    fn append(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        match self.file.write_all(data) {
            Ok(()) => {
                self.size += data.len() as u64;
                self.written += data.len() as u64;
                self.at_line_start = data.ends_with(b"\n");
            }
            // Full disk, say: what could not be written is lost, and the
            // supervisor keeps reading, so the service is never blocked.
            Err(err) => self.failed(format!("cannot write the log: {err}")),
        }
    }

    /// `<name>.log.<k>` becomes `.<k+1>` (the oldest is replaced), the
    /// current one `.1`, and a new current one is opened. If the new one
    /// cannot be opened, writing goes on in the old one.
    fn rotate(&mut self) {
        let result = (|| {
            if self.keep == 0 {
                // Nothing kept: the current file goes.
                self.state
                    .file(&file_name(&self.name, 0))
                    .unlink()
                    .map_err(|err| err.to_string())?;
            } else {
                for index in (1..self.keep).rev() {
                    self.state
                        .rename(
                            &file_name(&self.name, index),
                            &file_name(&self.name, index + 1),
                        )
                        .map_err(|err| err.to_string())?;
                }
                self.state
                    .rename(&file_name(&self.name, 0), &file_name(&self.name, 1))
                    .map_err(|err| err.to_string())?;
            }
            open_current(&self.state, &self.name).map_err(|failure| failure.message().to_owned())
        })();
        match result {
            Ok(file) => {
                self.file = file;
                self.size = 0;
                self.at_line_start = true;
                self.rotations += 1;
            }
            Err(why) => {
                self.failed(format!("cannot rotate the log: {why}"));
                // Keep writing where we are rather than lose lines; try
                // again at the next cap.
                self.size = 0;
            }
        }
    }

    fn failed(&mut self, why: String) {
        if self.failed.as_deref() != Some(why.as_str()) {
            eprintln!("lichtara supervisor of `{}`: {why}", self.name);
            self.failed = Some(why);
        }
    }
}

fn open_current(state: &StateDir, name: &str) -> Result<File, Failure> {
    let path = state.file(&file_name(name, 0));
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
        let files: Vec<String> = (0..=3).map(|i| read(&state, &file_name("s", i))).collect();
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
        assert!(
            read(&state, &file_name("s", 4)).is_empty(),
            "more kept than log_keep"
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_is_kept_whole() {
        let (_folder, state) = folder("long");
        let mut log = RotatingLog::open(&state, "s", 1024, 1).unwrap();
        log.write(b"short\n");
        let long = format!("{}\n", "y".repeat(3000));
        log.write(long.as_bytes());
        log.write(b"after\n");
        assert_eq!(read(&state, "s.log"), "after\n");
        assert_eq!(read(&state, "s.log.1"), long);
        log.note("stopped");
        assert_eq!(read(&state, "s.log"), "after\n-- lichtara: stopped\n");
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
