//! `lichtara logs [-n N] [-f]`: the end of the log, read from the end
//! (memory independent of the log's size), reaching back into the rotated
//! logs when the current one holds fewer lines; `-f` follows across
//! rotations until Ctrl-C or until stdout's reader goes away.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use rustix::event::{PollFd, PollFlags, poll};
use rustix::fs::inotify;

use crate::project::Project;
use crate::state::{Access, StateDir};
use crate::supervisor::log;
use crate::{Failure, output, record};

pub(crate) fn run(
    project: &Project,
    name: Option<&str>,
    lines: usize,
    follow: bool,
) -> Result<ExitCode, Failure> {
    let name = project.name(name)?;
    let Some(state) = project.existing_state_dir()? else {
        return Err(Failure::new(format!(
            "`{name}` has no log yet: it was never started here"
        )));
    };
    let current = record::log_path(&state, &name);
    let io_err = |err: std::io::Error| Failure::new(format!("{}: {err}", current.path().display()));
    // The last lines, from the current log and as many rotated ones as
    // they reach back into (newest first), each read from its end. The
    // current one is opened first and given its number (the one it has,
    // if a rotation came meanwhile, or the one it will get); only rotated
    // files numbered below it are older. Should it be removed before it is
    // numbered (rotated away past log_keep while this looked: a writer far
    // faster than the reader), its own last lines are printed; should every
    // file have gone between the listing and the opening, all is looked at
    // again.
    let mut pieces = Vec::new();
    for _ in 0..10 {
        pieces = last_lines(&state, &name, lines, &io_err)?;
        if !pieces.is_empty() {
            break;
        }
    }
    if pieces.is_empty() {
        return Err(Failure::new(format!(
            "`{name}` has no log yet: {} does not exist",
            current.path().display()
        )));
    }
    let mut position = 0;
    let mut held = None;
    for (index, (mut file, start)) in pieces.into_iter().enumerate().rev() {
        let copied = copy_from(&mut file, start).map_err(io_err)?;
        if index == 0 {
            position = start + copied;
            held = Some(file);
        }
    }
    let mut file = held.expect("pieces is not empty");
    if !follow || output::stdout_closed() {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: sleep in the kernel until the folder changes (inotify: a
    // write, or a rotation's new file) or stdout's reader goes away
    // (`logs -f | head -1`), then print what was appended. Ends with
    // Ctrl-C, as `tail -f` does, or with the reader.
    let watcher = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
        .map_err(|err| Failure::new(format!("cannot watch {}: {err}", current.path().display())))?;
    inotify::add_watch(
        &watcher,
        state.fd_path("."),
        inotify::WatchFlags::MODIFY | inotify::WatchFlags::CREATE | inotify::WatchFlags::MOVED_TO,
    )
    .map_err(|err| Failure::new(format!("cannot watch {}: {err}", current.path().display())))?;
    let stdout = std::io::stdout();
    let mut events = [std::mem::MaybeUninit::uninit(); 1024];
    loop {
        let length = file.metadata().map(|m| m.len()).unwrap_or(position);
        if length < position {
            // Truncated: start over from the beginning.
            position = 0;
        }
        position += copy_from(&mut file, position).map_err(io_err)?;
        // Rotated: what follows the held file is the rotated files
        // numbered higher, in order, then the current one. The current one
        // is opened only after a look at the rotated ones, and is held only
        // once a second look finds no rotated file between it and the last
        // one printed (else those are printed first, and it is opened
        // again): the order is the order of writing, whatever rotations
        // happen meanwhile.
        let held_inode = file.metadata().map(|m| m.ino()).map_err(io_err)?;
        let rotated_away = open_log(&state, &name, None)?
            .is_some_and(|now| now.metadata().is_ok_and(|m| m.ino() != held_inode));
        if rotated_away {
            // What was written to the held file before it was rotated.
            copy_from(&mut file, position).map_err(io_err)?;
            // The number it got (it was given one before the current name
            // moved on), found by its inode among the newest; not found:
            // removed already by log_keep, and every rotated file is newer.
            let mut printed = 0;
            for (number, _) in log::rotated(&state, &name).iter().rev() {
                if open_log(&state, &name, Some(*number))?
                    .is_some_and(|f| f.metadata().is_ok_and(|m| m.ino() == held_inode))
                {
                    printed = *number;
                    break;
                }
            }
            // The inode of the last file printed, and how much of it.
            let mut last = None;
            for _ in 0..1000 {
                for (number, _) in log::rotated(&state, &name) {
                    if number <= printed {
                        continue;
                    }
                    // Removed meanwhile: lost to log_keep before it was read.
                    if let Some(mut next) = open_log(&state, &name, Some(number))? {
                        let copied = copy_from(&mut next, 0).map_err(io_err)?;
                        last = Some((next.metadata().map(|m| m.ino()).map_err(io_err)?, copied));
                    }
                    printed = number;
                }
                let Some(mut now) = open_log(&state, &name, None)? else {
                    break;
                };
                let now_inode = now.metadata().map(|m| m.ino()).map_err(io_err)?;
                // The current file was given its number as the rotated ones
                // were read, and printed as one of them: held from there.
                if let Some((inode, copied)) = last
                    && inode == now_inode
                {
                    position = copied + copy_from(&mut now, copied).map_err(io_err)?;
                    file = now;
                    break;
                }
                let newer: Vec<u64> = log::rotated(&state, &name)
                    .into_iter()
                    .map(|(number, _)| number)
                    .filter(|number| *number > printed)
                    .collect();
                let nothing_between = match newer[..] {
                    [] => true,
                    // It was given its number just now.
                    [only] => open_log(&state, &name, Some(only))?
                        .is_some_and(|f| f.metadata().is_ok_and(|m| m.ino() == now_inode)),
                    _ => false,
                };
                if nothing_between {
                    file = now;
                    position = copy_from(&mut file, 0).map_err(io_err)?;
                    break;
                }
            }
        }
        if output::stdout_closed() {
            return Ok(ExitCode::SUCCESS);
        }
        // Caught up (first, for what came between the tail and the
        // watch); now sleep until something changes.
        let mut fds = [
            PollFd::new(&watcher, PollFlags::IN),
            // No events asked: poll still reports POLLERR / POLLHUP, which
            // is how a pipe says its reader has closed.
            PollFd::from_borrowed_fd(stdout.as_fd(), PollFlags::empty()),
        ];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(err) => {
                return Err(Failure::new(format!(
                    "watching {}: {err}",
                    current.path().display()
                )));
            }
        }
        if fds[1].revents().intersects(PollFlags::ERR | PollFlags::HUP) {
            return Ok(ExitCode::SUCCESS);
        }
        // Drain the events; what changed is read from the files themselves.
        let mut reader = inotify::Reader::new(watcher.as_fd(), &mut events);
        while reader.next().is_ok() {}
    }
}

/// The last `lines` lines of `name`'s logs: each piece a file and where
/// its part begins, newest first. `None` in place of the current log when
/// it was removed before it could be numbered (then nothing else is read).
#[allow(clippy::type_complexity)]
fn last_lines(
    state: &StateDir,
    name: &str,
    lines: usize,
    io_err: &dyn Fn(std::io::Error) -> Failure,
) -> Result<Vec<(File, u64)>, Failure> {
    let mut pieces = Vec::new();
    let mut needed = lines;
    let mut below = u64::MAX;
    if let Some(mut file) = open_log(state, name, None)? {
        // Rotated and removed before it could be placed (a writer far
        // faster than this reader): nothing older can follow it in order,
        // so its own last lines are the answer — never "no log".
        let Some(number) = number_of(state, name, &file).map_err(io_err)? else {
            let (start, _) = tail_start(&mut file, needed).map_err(io_err)?;
            return Ok(vec![(file, start)]);
        };
        below = number;
        let (start, found) = tail_start(&mut file, needed).map_err(io_err)?;
        needed -= found;
        pieces.push((file, start));
    }
    let older: Vec<u64> = log::rotated(state, name)
        .into_iter()
        .map(|(number, _)| number)
        .filter(|number| *number < below)
        .collect();
    for number in older.into_iter().rev() {
        if needed == 0 && !pieces.is_empty() {
            break;
        }
        // Removed meanwhile (it was the oldest kept): skipped.
        let Some(mut file) = open_log(state, name, Some(number))? else {
            continue;
        };
        let (start, found) = tail_start(&mut file, needed).map_err(io_err)?;
        needed -= found;
        pieces.push((file, start));
    }
    Ok(pieces)
}

/// The number `file` (opened as the current log) has among the rotated
/// logs, or will get when it is rotated: listed first, then the current
/// log looked at, so that a rotation in between cannot be missed. `None`
/// when it was rotated and already removed (log_keep) before this looked.
fn number_of(state: &StateDir, name: &str, file: &File) -> std::io::Result<Option<u64>> {
    let inode = file.metadata()?.ino();
    let rotated = log::rotated(state, name);
    let still_current = open_log(state, name, None)
        .ok()
        .flatten()
        .is_some_and(|now| now.metadata().is_ok_and(|m| m.ino() == inode));
    // Still current, it may have its number already (a rotation links it
    // under the number before the new file takes the name): the newest.
    let candidates = if still_current {
        &rotated[rotated.len().saturating_sub(1)..]
    } else {
        &rotated[..]
    };
    for (number, _) in candidates.iter().rev() {
        if let Ok(Some(rotated)) = open_log(state, name, Some(*number))
            && rotated.metadata()?.ino() == inode
        {
            return Ok(Some(*number));
        }
    }
    Ok(still_current.then(|| rotated.last().map_or(0, |(last, _)| *last) + 1))
}

/// The current log of `name` (`None`), or rotated log `sequence`.
fn open_log(state: &StateDir, name: &str, sequence: Option<u64>) -> Result<Option<File>, Failure> {
    let file = match sequence {
        None => log::current_name(name),
        Some(sequence) => log::rotated_name(name, sequence),
    };
    state.file(&file).open(Access::ReadLog, "read")
}

/// Where the last `lines` lines of `file` begin, reading backwards from
/// the end in blocks (the memory used does not depend on the file's
/// size), and how many lines that is (fewer when the file has fewer).
fn tail_start(file: &mut File, lines: usize) -> std::io::Result<(u64, usize)> {
    const BLOCK: u64 = 64 * 1024;
    let length = file.metadata()?.len();
    if lines == 0 {
        return Ok((length, 0));
    }
    let mut end = length;
    let mut block = vec![0u8; BLOCK as usize];
    // A final newline ends the last line; it does not begin another.
    let mut skip_final_newline = true;
    let mut newlines = 0;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut block[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        for (offset, byte) in chunk.iter().enumerate().rev() {
            if *byte != b'\n' {
                skip_final_newline = false;
                continue;
            }
            if std::mem::take(&mut skip_final_newline) && start + offset as u64 == length - 1 {
                continue;
            }
            newlines += 1;
            if newlines == lines {
                return Ok((start + offset as u64 + 1, lines));
            }
        }
        end = start;
    }
    // The first line has no newline before it.
    Ok((0, if length > 0 { newlines + 1 } else { 0 }))
}

/// Copies `file` from `position` to its current end onto stdout, in
/// blocks; returns how many bytes that was.
fn copy_from(file: &mut File, position: u64) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(position))?;
    let mut block = vec![0u8; 64 * 1024];
    let mut copied = 0;
    loop {
        let read = match file.read(&mut block) {
            Ok(0) => return Ok(copied),
            Ok(read) => read,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        copied += read as u64;
        if !output::bytes(&block[..read]) {
            return Ok(copied);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tail_start;
    use std::io::Write;

    fn start_of(text: &[u8], lines: usize) -> usize {
        let mut file = tempfile_with(text);
        tail_start(&mut file, lines).unwrap().0 as usize
    }

    fn tempfile_with(text: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "lichtara-tail-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(text).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    #[test]
    fn the_tail_starts_at_the_last_lines() {
        fn tail(text: &[u8], lines: usize) -> &[u8] {
            &text[start_of(text, lines)..]
        }
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
        assert_eq!(tail(b"\n\n\n", 1), b"\n");
        let counted = |text: &[u8], lines| tail_start(&mut tempfile_with(text), lines).unwrap().1;
        assert_eq!(counted(b"a\nb\n", 5), 2);
        assert_eq!(counted(b"a\nb", 5), 2);
        assert_eq!(counted(b"a\nb\nc\n", 2), 2);
        assert_eq!(counted(b"", 2), 0);
    }

    #[test]
    fn the_tail_of_a_log_larger_than_a_block_is_found_across_blocks() {
        let mut text = Vec::new();
        for line in 0..20_000 {
            writeln!(text, "line {line:05}").unwrap();
        }
        let start = start_of(&text, 3);
        assert_eq!(&text[start..], b"line 19997\nline 19998\nline 19999\n");
        assert_eq!(start_of(&text, 20_000), 0);
        assert_eq!(start_of(&text, 1_000_000), 0);
    }
}
