//! What a running node shows: the stats table once a second (stderr, so
//! stdout carries only the final report) and the `--stats-json` file.
//!
//! The JSON file always holds one complete document: it is rewritten
//! (write to `FILE.tmp`, then rename) with every table, and a last time at
//! exit with `"final": true`. A reader never sees a partial file.

use super::hub::StatsHub;
use super::snapshot::NodeSnapshot;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Prints and writes a node's statistics at an interval.
#[derive(Debug)]
pub struct StatsReporter {
    every: Duration,
    quiet: bool,
    json: Option<PathBuf>,
    since: Instant,
    last: Option<NodeSnapshot>,
}

impl StatsReporter {
    /// Reports every `every`; `quiet` prints nothing until the end; `json`
    /// names the stats file.
    pub fn new(every: Duration, quiet: bool, json: Option<PathBuf>) -> Self {
        StatsReporter {
            every,
            quiet,
            json,
            since: Instant::now(),
            last: None,
        }
    }

    /// Called often; reports when the interval is up.
    pub fn tick(&mut self, hub: &StatsHub) {
        if self.since.elapsed() < self.every {
            return;
        }
        self.since = Instant::now();
        let snap = hub.snapshot();
        if !self.quiet {
            // A closed stderr (`2>&1 | head`) must not stop the node.
            use std::io::Write as _;
            let table = snap.render_table(self.last.as_ref());
            let _ = std::io::stderr().lock().write_all(table.as_bytes());
        }
        if let Some(path) = &self.json {
            if let Err(e) = write_json(path, &snap, false) {
                tracing::warn!("{}: {e}", path.display());
            }
        }
        self.last = Some(snap);
    }

    /// Writes the final JSON document (if asked for).
    pub fn finish(&self, last: &NodeSnapshot) -> std::io::Result<()> {
        match &self.json {
            Some(p) => write_json(p, last, true),
            None => Ok(()),
        }
    }
}

/// Writes `snap` to `path` atomically (temporary file, then rename).
pub fn write_json(path: &Path, snap: &NodeSnapshot, is_final: bool) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut text =
        serde_json::to_string_pretty(&snap.to_json(is_final)).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}
