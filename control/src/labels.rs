//! Node labels (segment-routing style node SIDs). Each egress gateway
//! owns one MPLS label per gateway block, and each satellite one per
//! satellite block. The label space holds two blocks of each kind that
//! alternate by table epoch (even epochs use block 0, odd ones block 1),
//! so a new table can be installed make-before-break while packets
//! labelled under the previous epoch drain.
//!
//! Label of gateway `gid` in epoch `e`: `block_base[e % 2] + gid`; of
//! satellite `s`: `sat_base[e % 2] + s`. [`LabelPlan::node_label`] tells
//! which node any label stands for.

/// Errors allocating labels.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// More gateways than a block holds.
    #[error("gateway {gid} does not fit a label block of {block_size}")]
    BlockTooSmall {
        /// The gateway.
        gid: u32,
        /// Labels per block.
        block_size: u32,
    },
    /// More satellites than a satellite block holds.
    #[error("satellite {sat} does not fit a satellite label block of {block_size}")]
    SatBlockTooSmall {
        /// The satellite.
        sat: u32,
        /// Labels per satellite block.
        block_size: u32,
    },
    /// The blocks overlap, reach into the reserved labels 0..16, or beyond 2^20.
    #[error("invalid label plan: {0}")]
    Invalid(&'static str),
}

/// Largest MPLS label value + 1 (20-bit field).
pub const LABEL_SPACE: u32 = 1 << 20;
/// Labels 0..16 are reserved (RFC 3032).
pub const FIRST_UNRESERVED_LABEL: u32 = 16;

/// Where the label blocks lie: two for gateways, two for satellites.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelPlan {
    /// First label of gateway block 0 and of gateway block 1.
    pub block_base: [u32; 2],
    /// Labels per gateway block (maximum number of gateways).
    pub block_size: u32,
    /// First label of satellite block 0 and of satellite block 1.
    pub sat_base: [u32; 2],
    /// Labels per satellite block (maximum number of satellites).
    pub sat_block_size: u32,
}

/// The node a label stands for (see [`LabelPlan::node_label`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeLabel {
    /// The label of egress gateway `gid` in gateway block `block`.
    Gateway {
        /// Block 0 or 1.
        block: usize,
        /// The gateway.
        gid: u32,
    },
    /// The label of satellite `sat` in satellite block `block`.
    Satellite {
        /// Block 0 or 1.
        block: usize,
        /// The satellite (its node id).
        sat: u32,
    },
}

impl Default for LabelPlan {
    /// Gateway block 0 = 1000..5096, block 1 = 6000..10096 (4096 gateways
    /// each); satellite block 0 = 20000..36384, block 1 = 40000..56384
    /// (16384 satellites each): small enough for a label-indexed LFIB
    /// array, and readable in captures.
    fn default() -> Self {
        Self {
            block_base: [1000, 6000],
            block_size: 4096,
            sat_base: [20_000, 40_000],
            sat_block_size: 16_384,
        }
    }
}

impl LabelPlan {
    /// Checks that the four blocks are non-empty, pairwise disjoint and
    /// inside the unreserved label space.
    pub fn validate(&self) -> Result<(), LabelError> {
        if self.block_size == 0 || self.sat_block_size == 0 {
            return Err(LabelError::Invalid("empty blocks"));
        }
        let blocks = self.blocks();
        for &(base, size) in &blocks {
            if base < FIRST_UNRESERVED_LABEL {
                return Err(LabelError::Invalid(
                    "block inside the reserved labels 0..16",
                ));
            }
            if u64::from(base) + u64::from(size) > u64::from(LABEL_SPACE) {
                return Err(LabelError::Invalid("block beyond the 20-bit label space"));
            }
        }
        for (i, &(a, sa)) in blocks.iter().enumerate() {
            for &(b, sb) in &blocks[i + 1..] {
                // Half-open ranges [a, a + sa) and [b, b + sb) (no overflow:
                // both end inside the label space).
                if a < b + sb && b < a + sa {
                    return Err(LabelError::Invalid("blocks overlap"));
                }
            }
        }
        Ok(())
    }

    /// `(base, size)` of gateway blocks 0 and 1, then satellite blocks 0 and 1.
    fn blocks(&self) -> [(u32, u32); 4] {
        [
            (self.block_base[0], self.block_size),
            (self.block_base[1], self.block_size),
            (self.sat_base[0], self.sat_block_size),
            (self.sat_base[1], self.sat_block_size),
        ]
    }

    /// The block used by table epoch `epoch` (0 or 1).
    pub fn block_of(epoch: u64) -> usize {
        (epoch % 2) as usize
    }

    /// The label of egress gateway `gid` in epoch `epoch`.
    pub fn label(&self, epoch: u64, gid: u32) -> Result<u32, LabelError> {
        if gid >= self.block_size {
            return Err(LabelError::BlockTooSmall {
                gid,
                block_size: self.block_size,
            });
        }
        Ok(self.block_base[Self::block_of(epoch)] + gid)
    }

    /// The `(block, gid)` a label stands for, if it is a gateway's node
    /// label (satellite labels are `None` here; see [`LabelPlan::node_label`]).
    pub fn decode(&self, label: u32) -> Option<(usize, u32)> {
        (0..2).find_map(|b| {
            let base = self.block_base[b];
            (label >= base && label - base < self.block_size).then(|| (b, label - base))
        })
    }

    /// The node label of satellite `sat` in epoch `epoch`.
    pub fn sat_label(&self, epoch: u64, sat: u32) -> Result<u32, LabelError> {
        if sat >= self.sat_block_size {
            return Err(LabelError::SatBlockTooSmall {
                sat,
                block_size: self.sat_block_size,
            });
        }
        Ok(self.sat_base[Self::block_of(epoch)] + sat)
    }

    /// The `(block, sat)` a label stands for, if it is a satellite's node label.
    pub fn decode_sat(&self, label: u32) -> Option<(usize, u32)> {
        (0..2).find_map(|b| {
            let base = self.sat_base[b];
            (label >= base && label - base < self.sat_block_size).then(|| (b, label - base))
        })
    }

    /// The gateway or satellite a label stands for, `None` for a label
    /// outside the four blocks.
    pub fn node_label(&self, label: u32) -> Option<NodeLabel> {
        if let Some((block, gid)) = self.decode(label) {
            return Some(NodeLabel::Gateway { block, gid });
        }
        self.decode_sat(label)
            .map(|(block, sat)| NodeLabel::Satellite { block, sat })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_alternate_by_epoch() {
        let p = LabelPlan::default();
        p.validate().expect("default plan is valid");
        assert_eq!(p.label(4, 7).ok(), Some(1007));
        assert_eq!(p.label(5, 7).ok(), Some(6007));
        assert_eq!(p.decode(6007), Some((1, 7)));
        assert_eq!(p.decode(999), None);
        assert!(p.label(0, 4096).is_err());
        let bad = LabelPlan {
            block_base: [100, 200],
            block_size: 150,
            ..LabelPlan::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn satellite_labels_alternate_and_never_read_as_gateway_labels() {
        let p = LabelPlan::default();
        assert_eq!(p.sat_label(4, 0).ok(), Some(20_000));
        assert_eq!(p.sat_label(5, 1583).ok(), Some(41_583));
        assert_eq!(p.sat_label(6, 16_383).ok(), Some(36_383));
        assert!(matches!(
            p.sat_label(0, 16_384),
            Err(LabelError::SatBlockTooSmall {
                sat: 16_384,
                block_size: 16_384
            })
        ));
        assert_eq!(p.decode_sat(41_583), Some((1, 1583)));
        assert_eq!(p.decode_sat(36_384), None);
        assert_eq!(p.decode_sat(1007), None);
        // A satellite label is no gateway's, and the other way round.
        assert_eq!(p.decode(20_007), None);
        assert_eq!(
            p.node_label(20_007),
            Some(NodeLabel::Satellite { block: 0, sat: 7 })
        );
        assert_eq!(
            p.node_label(6007),
            Some(NodeLabel::Gateway { block: 1, gid: 7 })
        );
        for l in [0, 15, 999, 5096, 10_096, 19_999, 36_384, 39_999, 56_384] {
            assert_eq!(p.node_label(l), None, "label {l}");
        }
        // Every label of every block names its own node and block back.
        for e in 0..2u64 {
            for sat in [0, 1, 1583, 16_383] {
                let l = p.sat_label(e, sat).expect("fits");
                let block = LabelPlan::block_of(e);
                assert_eq!(p.node_label(l), Some(NodeLabel::Satellite { block, sat }));
            }
            for gid in [0, 99, 4095] {
                let l = p.label(e, gid).expect("fits");
                let block = LabelPlan::block_of(e);
                assert_eq!(p.node_label(l), Some(NodeLabel::Gateway { block, gid }));
            }
        }
    }

    #[test]
    fn validate_wants_four_disjoint_blocks_in_the_label_space() {
        let ok = LabelPlan::default();
        let invalid = |p: LabelPlan| matches!(p.validate(), Err(LabelError::Invalid(_)));
        // Satellite blocks overlapping each other, a gateway block, or
        // touching without overlap (fine).
        assert!(invalid(LabelPlan {
            sat_base: [20_000, 30_000],
            ..ok
        }));
        assert!(invalid(LabelPlan {
            sat_base: [4000, 40_000],
            ..ok
        }));
        assert!(invalid(LabelPlan {
            sat_base: [20_000, 5000],
            sat_block_size: 100,
            ..ok
        }));
        // A small satellite block may sit between the gateway blocks.
        LabelPlan {
            sat_base: [5096, 10_096],
            sat_block_size: 904,
            ..ok
        }
        .validate()
        .expect("adjacent blocks are disjoint");
        assert!(invalid(LabelPlan {
            sat_base: [5096, 10_096],
            sat_block_size: 905,
            ..ok
        }));
        // Reserved labels, the end of the 20-bit space, empty blocks.
        assert!(invalid(LabelPlan {
            sat_base: [15, 40_000],
            ..ok
        }));
        assert!(invalid(LabelPlan {
            sat_base: [20_000, LABEL_SPACE - 16_383],
            ..ok
        }));
        LabelPlan {
            sat_base: [20_000, LABEL_SPACE - 16_384],
            ..ok
        }
        .validate()
        .expect("the last block ends at 2^20");
        assert!(invalid(LabelPlan {
            sat_block_size: 0,
            ..ok
        }));
        assert!(invalid(LabelPlan {
            sat_base: [u32::MAX, 40_000],
            ..ok
        }));
    }
}
