//! A command's output on stdout, written so that a reader that goes away
//! (`meshplane routes ... | head`) ends the command quietly instead of
//! panicking: `print!`/`println!` panic on a write error, these macros
//! return it, and the binary exits 0 without a word when it says the pipe
//! is closed.

use std::io::Write;

/// Stdout could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing to stdout")]
pub struct StdoutError(#[source] pub std::io::Error);

impl StdoutError {
    /// Whether the reader closed stdout (EPIPE): the end a pipeline gives
    /// its writer, not a failure to report.
    pub fn is_closed(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// Whether any cause of `e` is a closed stdout.
pub fn is_closed_stdout(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<StdoutError>()
            .is_some_and(StdoutError::is_closed)
    })
}

/// Writes `args` to stdout and flushes it, so that an error shows here
/// rather than when the buffer is dropped at exit.
pub fn write_fmt(args: std::fmt::Arguments<'_>) -> Result<(), StdoutError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.flush())
        .map_err(StdoutError)
}

/// `print!` that returns a [`StdoutError`] instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_fmt(format_args!($($arg)*))
    };
}

/// `println!` that returns a [`StdoutError`] instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::cli::stdout::write_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::stdout::write_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_pipe_is_told_apart_from_other_write_errors() {
        let closed = anyhow::Error::new(StdoutError(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        )))
        .context("routes");
        assert!(is_closed_stdout(&closed));
        let full = anyhow::Error::new(StdoutError(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        )));
        assert!(!is_closed_stdout(&full));
        // A broken pipe elsewhere (a capture written to a FIFO) is an error.
        let other = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(!is_closed_stdout(&other));
    }
}
