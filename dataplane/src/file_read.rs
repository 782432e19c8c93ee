//! Reading files an operator names (node configurations, the failure
//! file, ground stations, TLE sets, captures), bounded and without
//! blocking on what is not a file.
//!
//! A path can name, or come to name, a FIFO (whose open waits for a
//! writer and whose read may never end), a device such as `/dev/zero`
//! (endless data) or a regular file far larger than any configuration.
//! Every read of such a path in this crate goes through here (clippy's
//! `disallowed_methods` in `dataplane/clippy.toml` refuses
//! `std::fs::read_to_string`, `std::fs::read` and `File::open` elsewhere):
//! the file is opened with `O_NONBLOCK` (an open of a FIFO returns at
//! once), checked with `fstat` on the opened descriptor to be a regular
//! file, and read to at most `limit + 1` bytes, so a file that grows while
//! it is read is refused too.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest node configuration file read (tables for a large node are a
/// few hundred KiB).
pub const CONFIG_LIMIT: u64 = 4 << 20;

/// Largest failure file followed (about a million events).
pub const FAILURES_LIMIT: u64 = 16 << 20;

/// Largest ground-station CSV or TLE file read.
pub const DATA_LIMIT: u64 = 64 << 20;

/// Largest small system file read (`/proc`, `/sys`).
pub const SYSTEM_LIMIT: u64 = 1 << 20;

/// Why a file was not read. The messages do not repeat the path: callers
/// name the file once, in their own context.
#[derive(Debug, thiserror::Error)]
pub enum FileReadError {
    /// The open failed.
    #[error("cannot open: {0}")]
    Open(std::io::Error),
    /// The path names something other than a regular file.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// The file is larger than the limit.
    #[error("larger than the limit of {} for this file", human(*.0))]
    TooLarge(u64),
    /// Reading failed.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// The file is not UTF-8 text.
    #[error("not UTF-8 text (byte {0})")]
    NotUtf8(usize),
}

fn human(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading if it is a regular file, without blocking on
/// a FIFO; also returns its size. For streaming large inputs (captures);
/// small files use [`read_bytes`] or [`read_text`].
pub fn open_regular(path: &Path) -> Result<(File, u64), FileReadError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(FileReadError::Open)?;
    let meta = f.metadata().map_err(FileReadError::Read)?;
    if !meta.file_type().is_file() {
        return Err(FileReadError::NotRegular(kind(meta.file_type())));
    }
    Ok((f, meta.len()))
}

/// The bytes of the regular file `path`, refused when larger than `limit`.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, FileReadError> {
    let (f, len) = open_regular(path)?;
    if len > limit {
        return Err(FileReadError::TooLarge(limit));
    }
    // `len` may be 0 for /proc files; the reader still stops at limit + 1.
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    f.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(FileReadError::Read)?;
    if buf.len() as u64 > limit {
        return Err(FileReadError::TooLarge(limit));
    }
    Ok(buf)
}

/// The text of the regular file `path`, refused when larger than `limit`
/// or not UTF-8.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileReadError> {
    String::from_utf8(read_bytes(path, limit)?)
        .map_err(|e| FileReadError::NotUtf8(e.utf8_error().valid_up_to()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path in a directory of the test's own, removed with it.
    struct Tmp(std::path::PathBuf);

    impl Drop for Tmp {
        fn drop(&mut self) {
            if let Some(d) = self.0.parent() {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }

    impl std::ops::Deref for Tmp {
        type Target = Path;
        fn deref(&self) -> &Path {
            &self.0
        }
    }

    fn tmp(name: &str) -> Tmp {
        let dir = std::env::temp_dir().join(format!("mp-file-read-{}-{name}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        Tmp(dir.join(name))
    }

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let p = tmp("ok");
        std::fs::write(&*p, "abc").expect("write");
        assert_eq!(read_text(&p, 3).expect("read"), "abc");
        let e = read_text(&p, 2).expect_err("over the limit");
        assert_eq!(
            e.to_string(),
            "larger than the limit of 2 bytes for this file"
        );
        std::fs::write(&*p, [0xff, 0xfe]).expect("write");
        assert!(matches!(read_text(&p, 10), Err(FileReadError::NotUtf8(0))));
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_at_once() {
        let e = read_text(Path::new("/dev/zero"), CONFIG_LIMIT).expect_err("device");
        assert_eq!(e.to_string(), "is a character device, not a regular file");
        let e = read_text(Path::new("/"), CONFIG_LIMIT).expect_err("directory");
        assert_eq!(e.to_string(), "is a directory, not a regular file");
        let fifo = tmp("fifo");
        let _ = std::fs::remove_file(&*fifo);
        let made = std::process::Command::new("mkfifo")
            .arg(&*fifo)
            .status()
            .is_ok_and(|s| s.success());
        if made {
            // No writer: a blocking open would wait here for ever.
            let e = read_text(&fifo, CONFIG_LIMIT).expect_err("fifo");
            assert_eq!(e.to_string(), "is a FIFO, not a regular file");
        }
        let e = read_text(&tmp("missing"), CONFIG_LIMIT).expect_err("missing");
        assert!(e.to_string().starts_with("cannot open: "), "{e}");
        assert_eq!(human(CONFIG_LIMIT), "4 MiB");
    }

    #[test]
    fn proc_files_with_no_size_are_read() {
        let t = read_text(Path::new("/proc/self/status"), SYSTEM_LIMIT).expect("procfs");
        assert!(t.contains("VmRSS") || t.contains("Name"), "{t}");
    }
}
