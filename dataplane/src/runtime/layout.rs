//! Which threads a node runs and on which cores, from `[node] cores` and
//! `[node] mode`.
//!
//! - run-to-completion: one worker per core, each owning queue `i` of
//!   every port (RSS spreads flows over the queues).
//! - pipeline: cores in pairs `[io, crypto, io, crypto, ...]`; each pair
//!   owns one queue of every port. The I/O thread receives, runs the stages
//!   before the AEAD, and transmits; the crypto thread runs the AEAD stages.

use super::hub::{WorkerInfo, WorkerRole};
use crate::config::Mode;

/// The node's threads, as the runtime will start them.
#[derive(Clone, Debug)]
pub struct Layout {
    mode: Mode,
    threads: Vec<WorkerInfo>,
}

/// The cores do not fit the mode.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LayoutError(String);

impl Layout {
    /// The threads for `cores` (empty: one unpinned thread, or one
    /// unpinned pair in pipeline mode) under `mode`.
    pub fn new(cores: &[usize], mode: Mode) -> Result<Self, LayoutError> {
        for (i, c) in cores.iter().enumerate() {
            if cores[..i].contains(c) {
                return Err(LayoutError(format!(
                    "core {c} is listed twice in [node] cores: each worker needs its own core"
                )));
            }
        }
        let pinned: Vec<Option<usize>> = if cores.is_empty() {
            match mode {
                Mode::RunToCompletion => vec![None],
                Mode::Pipeline => vec![None, None],
            }
        } else {
            cores.iter().copied().map(Some).collect()
        };
        if mode == Mode::Pipeline && !pinned.len().is_multiple_of(2) {
            return Err(LayoutError(format!(
                "mode = \"pipeline\" runs cores in pairs (I/O, crypto); [node] cores has {}",
                pinned.len()
            )));
        }
        let threads = pinned
            .into_iter()
            .enumerate()
            .map(|(index, core)| WorkerInfo {
                index,
                core,
                role: match mode {
                    Mode::RunToCompletion => WorkerRole::RunToCompletion,
                    Mode::Pipeline if index % 2 == 0 => WorkerRole::Io,
                    Mode::Pipeline => WorkerRole::Crypto,
                },
            })
            .collect();
        Ok(Layout { mode, threads })
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every thread, in index order.
    pub fn threads(&self) -> &[WorkerInfo] {
        &self.threads
    }

    /// Queue pairs each port needs: one per thread that polls ports.
    pub fn queues(&self) -> usize {
        match self.mode {
            Mode::RunToCompletion => self.threads.len(),
            Mode::Pipeline => self.threads.len() / 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_pairs_cores() {
        let l = Layout::new(&[2, 3, 4, 5], Mode::Pipeline).expect("layout");
        assert_eq!(l.queues(), 2);
        assert_eq!(l.threads()[1].role, WorkerRole::Crypto);
        assert_eq!(l.threads()[2].core, Some(4));
        assert!(Layout::new(&[1, 2, 3], Mode::Pipeline).is_err());
        assert!(Layout::new(&[1, 1], Mode::RunToCompletion).is_err());
        assert_eq!(
            Layout::new(&[], Mode::RunToCompletion)
                .expect("one")
                .queues(),
            1
        );
    }
}
