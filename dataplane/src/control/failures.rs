//! Failure events from a plain text file that an operator (or
//! `scripts/mesh fail-isl`) appends to; every node follows the same file.
//!
//! One event per line: `isl-down A B`, `isl-up A B`, `sat-down S`,
//! `sat-up S` (satellite ids), `gsl-down S GID`, `gsl-up S GID` (a
//! satellite and a ground station); `#` starts a comment.

use crate::file_read::{read_text, FileReadError, FAILURES_LIMIT};
use meshplane_control::schedule::FailureEvent;
use std::path::{Path, PathBuf};

/// Parses one line; `Ok(None)` for blank lines and comments.
pub fn parse_line(line: &str) -> Result<Option<FailureEvent>, String> {
    let line = line.split('#').next().unwrap_or("").trim();
    if line.is_empty() {
        return Ok(None);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let id = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is not a satellite id"))
    };
    let gid = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("{s:?} is not a ground station id"))
    };
    match words.as_slice() {
        ["isl-down", a, b] => Ok(Some(FailureEvent::IslDown(id(a)?, id(b)?))),
        ["isl-up", a, b] => Ok(Some(FailureEvent::IslUp(id(a)?, id(b)?))),
        ["sat-down", s] => Ok(Some(FailureEvent::SatelliteDown(id(s)?))),
        ["sat-up", s] => Ok(Some(FailureEvent::SatelliteUp(id(s)?))),
        ["gsl-down", s, g] => Ok(Some(FailureEvent::GslDown(id(s)?, gid(g)?))),
        ["gsl-up", s, g] => Ok(Some(FailureEvent::GslUp(id(s)?, gid(g)?))),
        _ => Err(format!(
            "{line:?}: want `isl-down A B`, `isl-up A B`, `sat-down S`, `sat-up S`, `gsl-down S GID` or `gsl-up S GID`"
        )),
    }
}

/// Follows a failure file: each call to [`FailureFeed::poll`] returns the
/// events appended since the last one. A missing file means no events; a
/// bad line is reported once and skipped. A path that is not a regular
/// file (a FIFO, a device) or a file over [`FAILURES_LIMIT`] is reported
/// once and yields no events. A file rewritten rather than
/// appended to (truncated, or replaced by another) is read again from its
/// first line.
#[derive(Debug)]
pub struct FailureFeed {
    path: PathBuf,
    lines_seen: usize,
    /// The complete lines read so far, to notice a rewrite.
    consumed: String,
    /// The last read error reported, so that it is reported once.
    reported: Option<String>,
}

impl FailureFeed {
    /// Follows `path` from its beginning.
    pub fn new(path: &Path) -> Self {
        FailureFeed {
            path: path.to_path_buf(),
            lines_seen: 0,
            consumed: String::new(),
            reported: None,
        }
    }

    /// New events, in file order.
    pub fn poll(&mut self) -> Vec<FailureEvent> {
        let text = match read_text(&self.path, FAILURES_LIMIT) {
            Ok(t) => {
                self.reported = None;
                t
            }
            Err(FileReadError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Vec::new()
            }
            Err(e) => {
                let msg = e.to_string();
                if self.reported.as_deref() != Some(msg.as_str()) {
                    tracing::warn!(file = %self.path.display(), "failure file not read: {msg}");
                    self.reported = Some(msg);
                }
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        // Only complete lines: a writer may be half-way through the last one.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        if !complete.starts_with(&self.consumed) {
            tracing::warn!(
                file = %self.path.display(),
                "failure file was rewritten; reading it again from the start"
            );
            self.lines_seen = 0;
        }
        self.consumed.clear();
        self.consumed.push_str(complete);
        for (i, line) in complete.lines().enumerate().skip(self.lines_seen) {
            self.lines_seen = i + 1;
            match parse_line(line) {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => {}
                Err(msg) => tracing::warn!(
                    file = %self.path.display(),
                    line = i + 1,
                    "ignoring failure event: {msg}"
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_events_and_names_bad_lines() {
        assert_eq!(
            parse_line("isl-down 3 25 # planned"),
            Ok(Some(FailureEvent::IslDown(3, 25)))
        );
        assert_eq!(parse_line("  # note"), Ok(None));
        assert_eq!(
            parse_line("sat-up 7"),
            Ok(Some(FailureEvent::SatelliteUp(7)))
        );
        assert_eq!(
            parse_line("gsl-down 7 12"),
            Ok(Some(FailureEvent::GslDown(7, 12)))
        );
        assert!(parse_line("gsl-up 7 x")
            .unwrap_err()
            .contains("not a ground station id"));
        assert!(parse_line("isl-down 3")
            .unwrap_err()
            .contains("isl-down A B"));
        assert!(parse_line("sat-down x").unwrap_err().contains("\"x\""));
    }

    #[test]
    fn feed_returns_only_new_complete_lines() {
        let dir = std::env::temp_dir().join(format!("mp-fail-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("failures");
        let _ = std::fs::remove_file(&path);
        let mut feed = FailureFeed::new(&path);
        assert!(feed.poll().is_empty());
        let mut f = std::fs::File::create(&path).unwrap();
        write!(f, "isl-down 1 2\nbogus\nsat-down").unwrap();
        assert_eq!(feed.poll(), vec![FailureEvent::IslDown(1, 2)]);
        writeln!(f, " 9").unwrap();
        assert_eq!(feed.poll(), vec![FailureEvent::SatelliteDown(9)]);
        assert!(feed.poll().is_empty());
        // Rewritten with fewer lines: the new lines are events too.
        std::fs::write(&path, "sat-up 9\n").unwrap();
        assert_eq!(feed.poll(), vec![FailureEvent::SatelliteUp(9)]);
        // Replaced by a file as long as what was read: read again.
        std::fs::write(&path, "sat-up 8\nisl-up 1 2\n").unwrap();
        assert_eq!(
            feed.poll(),
            vec![FailureEvent::SatelliteUp(8), FailureEvent::IslUp(1, 2)]
        );
        assert!(feed.poll().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn endless_or_huge_failure_files_are_refused_not_read() {
        let mut feed = FailureFeed::new(Path::new("/dev/zero"));
        let t = std::time::Instant::now();
        assert!(feed.poll().is_empty());
        assert!(feed.poll().is_empty());
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
        assert_eq!(
            feed.reported.as_deref(),
            Some("is a character device, not a regular file")
        );
        let dir = std::env::temp_dir().join(format!("mp-fail-big-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("failures");
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(FAILURES_LIMIT + 1).unwrap();
        let mut feed = FailureFeed::new(&path);
        assert!(feed.poll().is_empty());
        assert!(feed
            .reported
            .as_deref()
            .is_some_and(|m| m.contains("16 MiB")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
