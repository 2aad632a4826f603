//! Standard output of the command line. A closed pipe (`handler demo | head`) silences the
//! rest of the output instead of panicking, and the command still ends with its own exit
//! code (0 when it succeeded): the run itself is not cut short by a reader that stopped
//! reading, so a purge piped into `head` deletes exactly what it would have deleted.

use std::fmt;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes one line to standard output, unless standard output has been closed.
pub fn line(text: fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(format_args!("{text}\n")) {
        CLOSED.store(true, Ordering::Relaxed);
        if error.kind() != ErrorKind::BrokenPipe {
            eprintln!("Error: cannot write to standard output: {error}");
        }
    }
}

/// Writes `value` as pretty JSON (no newline), straight to standard output, so a large
/// document is never held as one string; a closed pipe silences it like [`line`].
pub fn json(value: &impl serde::Serialize) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut stdout, value)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        CLOSED.store(true, Ordering::Relaxed);
        if error.kind() != ErrorKind::BrokenPipe {
            eprintln!("Error: cannot write to standard output: {error}");
        }
    }
}

/// Flushes standard output (a closed pipe is not an error).
pub fn flush() {
    if !CLOSED.load(Ordering::Relaxed) && std::io::stdout().flush().is_err() {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

/// `println!` that survives a closed pipe: see [`line`].
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use say;
