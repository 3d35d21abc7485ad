//! `lichtara logs [-n N] [-f]`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

use rustix::fs::inotify;

use crate::Failure;
use crate::project::Project;
use crate::record;

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
    let path = record::log_path(&state, &name);
    let mut file =
        File::open(&path).map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
    let mut text = Vec::new();
    file.read_to_end(&mut text)
        .map_err(|err| Failure::new(format!("{}: {err}", path.display())))?;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(tail(&text, lines));
    let _ = out.flush();
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    // Follow: sleep in the kernel until the file changes (inotify), then
    // print what was appended. Ends with Ctrl-C, as `tail -f` does.
    let watcher = inotify::init(inotify::CreateFlags::CLOEXEC)
        .map_err(|err| Failure::new(format!("cannot watch {}: {err}", path.display())))?;
    inotify::add_watch(&watcher, &path, inotify::WatchFlags::MODIFY)
        .map_err(|err| Failure::new(format!("cannot watch {}: {err}", path.display())))?;
    let mut position = text.len() as u64;
    let mut events = [std::mem::MaybeUninit::uninit(); 1024];
    loop {
        let mut reader = inotify::Reader::new(watcher.as_fd(), &mut events);
        match reader.next() {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(err) => return Err(Failure::new(format!("watching {}: {err}", path.display()))),
        }
        let length = file.metadata().map(|m| m.len()).unwrap_or(position);
        if length < position {
            // Truncated: start over from the beginning.
            position = 0;
        }
        let _ = file.seek(SeekFrom::Start(position));
        let mut appended = Vec::new();
        let _ = file.read_to_end(&mut appended);
        position += appended.len() as u64;
        let _ = out.write_all(&appended);
        let _ = out.flush();
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &[u8], lines: usize) -> &[u8] {
    if lines == 0 {
        return &[];
    }
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, byte)| **byte == b'\n')
        .nth(lines - 1)
        .map_or(0, |(index, _)| index + 1);
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"");
        assert_eq!(tail(b"", 3), b"");
    }
}
