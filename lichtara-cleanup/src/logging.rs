//! The compact stderr subscriber `#[lichtara::main]` installs when the
//! application installed none, so a newcomer sees the shutdown; and its
//! writer, which the sequencer batches: the lines of the hooks that ended
//! together reach stderr in one write, not one write each.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;

/// Installs the default subscriber unless one is set. It is installed when
/// shutdown begins, not at startup, so that an application may still call
/// `tracing_subscriber::fmt().init()` in `main`.
pub(crate) fn install_default() {
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .and_then(|value| match value.parse::<Targets>() {
            Ok(targets) => Some(targets),
            Err(err) => {
                eprintln!("lichtara: ignoring RUST_LOG={value:?} ({err}); logging at info");
                None
            }
        })
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    let layer = tracing_subscriber::fmt::layer()
        .compact()
        .with_writer(|| Stderr)
        .with_ansi(std::io::stderr().is_terminal());
    // Losing a race with the application's own subscriber is fine.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(filter))
        .try_init();
}

/// Logs a warning through `tracing` when a subscriber can receive it, and
/// on stderr otherwise (before `main` installed one, or in a program that
/// never will): a warning about a hook that will not run must be seen.
pub(crate) fn warn_now(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        // Not `eprintln!`: this may run at exit, where a failed write must
        // not panic.
        let _ = writeln!(std::io::stderr(), "lichtara: warning: {message}");
    }
}

/// Logs an error as [`warn_now`] logs a warning.
pub(crate) fn error_now(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{message}");
    } else {
        let _ = writeln!(std::io::stderr(), "lichtara: {message}");
    }
}

/// Lines held for one write: while a [`Batch`] is open, the default
/// subscriber's lines gather here.
struct Pending {
    open: usize,
    lines: Vec<u8>,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    open: 0,
    lines: Vec::new(),
});

/// A batch gathers at most this much before it is written anyway.
const BATCH_BYTES: usize = 64 * 1024;

fn pending() -> MutexGuard<'static, Pending> {
    PENDING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Writes what `pending` holds. Lines are written under the lock, so that
/// they reach stderr in the order they were logged.
fn write_out(pending: &mut Pending) {
    if !pending.lines.is_empty() {
        // A closed stderr loses the lines, as an unbatched write would.
        let _ = emit(&pending.lines);
        pending.lines.clear();
    }
}

/// One write to stderr (in unit tests, to the capture when one is set).
fn emit(bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(test)]
    if let Some(writes) = tests::CAPTURE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        writes.push(bytes.to_vec());
        return Ok(());
    }
    std::io::stderr().write_all(bytes)
}

/// While it lives, the default subscriber's lines (from any thread) are
/// held and written together when the last open batch ends, or when
/// [`BATCH_BYTES`] have gathered. The sequencer opens one around the
/// hooks it logs at once; it is never held across an `.await`.
pub(crate) struct Batch(());

/// Opens a [`Batch`].
pub(crate) fn batch() -> Batch {
    pending().open += 1;
    Batch(())
}

impl Drop for Batch {
    fn drop(&mut self) {
        let mut pending = pending();
        pending.open -= 1;
        if pending.open == 0 {
            write_out(&mut pending);
        }
    }
}

/// Writes the lines a batch holds, before the process ends. Gives up
/// rather than wait when another thread is writing (its stderr may be a
/// pipe nobody reads): the exit must not hang on the log.
pub(crate) fn flush() {
    if let Ok(mut pending) = PENDING.try_lock() {
        write_out(&mut pending);
    }
}

/// The default subscriber's writer: straight to stderr, or into the open
/// batch.
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        self.write_all(line).map(|()| line.len())
    }

    fn write_all(&mut self, line: &[u8]) -> std::io::Result<()> {
        let mut pending = pending();
        if pending.open == 0 {
            // In order behind any batch just written: under the lock.
            return emit(line);
        }
        pending.lines.extend_from_slice(line);
        if pending.lines.len() >= BATCH_BYTES {
            write_out(&mut pending);
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where `emit` writes while a test captures: one entry a write.
    pub(super) static CAPTURE: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(None);

    #[test]
    fn lines_of_a_batch_are_written_together_in_order_and_others_at_once() {
        *CAPTURE.lock().unwrap() = Some(Vec::new());
        Stderr.write_all(b"before\n").unwrap();
        {
            let _outer = batch();
            for n in 0..100 {
                Stderr.write_all(format!("line {n}\n").as_bytes()).unwrap();
            }
            {
                // Nested: the outer batch still holds the lines.
                let _inner = batch();
                Stderr.write_all(b"nested\n").unwrap();
            }
            assert_eq!(CAPTURE.lock().unwrap().as_ref().unwrap().len(), 1);
        }
        Stderr.write_all(b"after\n").unwrap();
        let writes = CAPTURE.lock().unwrap().take().unwrap();
        assert_eq!(
            writes.len(),
            3,
            "one write before, one for the batch, one after"
        );
        let batch = String::from_utf8(writes[1].clone()).unwrap();
        assert_eq!(batch.lines().count(), 101);
        assert!(batch.starts_with("line 0\n") && batch.ends_with("line 99\nnested\n"));
        assert_eq!(
            (&*writes[0], &*writes[2]),
            (&b"before\n"[..], &b"after\n"[..])
        );
        // Nothing is left to flush.
        assert!(pending().lines.is_empty());
    }
}
