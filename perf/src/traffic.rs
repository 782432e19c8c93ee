//! Test traffic held in memory: every frame copied once into one contiguous,
//! pre-faulted arena, so replay reads nothing from disk and takes no page
//! fault, as a traffic generator's preloaded stream.

use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::pcap::{read_file, CapturedPacket};
use std::path::Path;

/// Bytes a frame occupies on the wire besides the capture: the FCS.
pub const FCS: usize = 4;
/// Per-frame overhead on the wire below layer 2: preamble, SFD and the
/// minimum inter-frame gap (8 + 12 bytes).
pub const L1_OVERHEAD: usize = 20;

/// A list of frames (without FCS) in one arena.
#[derive(Clone, Default)]
pub struct Traffic {
    arena: Vec<u8>,
    frames: Vec<(usize, usize)>,
    wire_bytes: u64,
    max_len: usize,
}

impl Traffic {
    /// Copies `frames` into a new arena.
    pub fn from_frames<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Traffic {
        let mut t = Traffic::default();
        for f in frames {
            let off = t.arena.len();
            t.arena.extend_from_slice(f);
            t.frames.push((off, f.len()));
            t.wire_bytes += (f.len() + FCS) as u64;
            t.max_len = t.max_len.max(f.len());
        }
        t.arena.shrink_to_fit();
        t
    }

    /// Copies captured packets into a new arena.
    pub fn from_captured(p: &[CapturedPacket]) -> Traffic {
        Self::from_frames(p.iter().map(|p| p.data.as_slice()))
    }

    /// The frames as captured packets (for the node replays that derive
    /// one role's input from the previous hop's output).
    pub fn to_captured(&self) -> Vec<CapturedPacket> {
        (0..self.len())
            .map(|i| CapturedPacket {
                ts: std::time::Duration::from_micros(i as u64),
                data: self.frame(i).to_vec(),
            })
            .collect()
    }

    /// Number of frames.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when there is no frame.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frame `i` (without FCS).
    #[inline]
    pub fn frame(&self, i: usize) -> &[u8] {
        let (o, l) = self.frames[i];
        &self.arena[o..o + l]
    }

    /// Longest frame, in bytes without FCS.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Mean frame size on the wire at layer 2, FCS included (as RFC 2544
    /// and the generator count frame sizes: "64 B" is 60 bytes + FCS).
    pub fn mean_wire_bytes(&self) -> f64 {
        if self.frames.is_empty() {
            return 0.0;
        }
        self.wire_bytes as f64 / self.frames.len() as f64
    }
}

/// Where the test traffic comes from.
#[derive(Clone, Debug)]
pub enum TrafficSource {
    /// The built-in generator: UDP flows from gateway A's LAN to B's.
    Generator {
        /// Frame size.
        size: FrameSize,
        /// Distinct frames (one replay pass).
        frames: u64,
        /// Distinct flows.
        flows: u32,
    },
    /// A user capture of LAN traffic (Ethernet), read once.
    Pcap(std::path::PathBuf),
}

impl TrafficSource {
    /// A short name for tables: the frame size or the file name.
    pub fn label(&self) -> String {
        match self {
            TrafficSource::Generator { size, .. } => size.to_string(),
            TrafficSource::Pcap(p) => p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| p.display().to_string()),
        }
    }

    /// Builds or reads the LAN traffic.
    pub fn load(&self) -> anyhow::Result<Traffic> {
        match self {
            TrafficSource::Generator {
                size,
                frames,
                flows,
            } => {
                // Whole IMIX cycles, so the mix is exact in every pass.
                let count = match size {
                    FrameSize::Imix => {
                        let c = meshplane::gen::IMIX_CYCLE.len() as u64;
                        frames.div_ceil(c).max(1) * c
                    }
                    FrameSize::Fixed(_) => (*frames).max(1),
                };
                let spec = GenSpec {
                    count,
                    size: *size,
                    flows: *flows,
                    ..GenSpec::default()
                };
                let p = generate(&spec).map_err(|e| anyhow::anyhow!("generator: {e}"))?;
                Ok(Traffic::from_captured(&p))
            }
            TrafficSource::Pcap(path) => load_pcap(path),
        }
    }
}

fn load_pcap(path: &Path) -> anyhow::Result<Traffic> {
    let (p, info) = read_file(path)?;
    if p.is_empty() {
        anyhow::bail!("{}: the capture holds no packet", path.display());
    }
    if info.truncated > 0 {
        anyhow::bail!(
            "{}: {} packets were captured shorter than they were on the wire (snaplen); \
             replaying them would measure other frames than the capture's",
            path.display(),
            info.truncated
        );
    }
    Ok(Traffic::from_captured(&p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imix_mean_is_the_standard_mix() {
        let t = TrafficSource::Generator {
            size: FrameSize::Imix,
            frames: 100,
            flows: 4,
        }
        .load()
        .unwrap();
        assert_eq!(t.len() % 12, 0);
        // (7 * 64 + 4 * 576 + 1500) / 12
        assert!((t.mean_wire_bytes() - 4252.0 / 12.0).abs() < 1e-9);
        let f = TrafficSource::Generator {
            size: FrameSize::Fixed(64),
            frames: 10,
            flows: 4,
        }
        .load()
        .unwrap();
        assert_eq!(f.frame(3).len(), 60);
        assert_eq!(f.mean_wire_bytes(), 64.0);
    }
}
