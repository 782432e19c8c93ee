//! Node labels: each egress gateway owns one MPLS label per label block.
//! The label space holds two blocks that alternate by table epoch (even
//! epochs use block 0, odd ones block 1), so a new table can be installed
//! make-before-break while packets labelled under the previous epoch drain.
//!
//! Label of gateway `gid` in epoch `e`: `block_base[e % 2] + gid`.

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
    /// The blocks overlap, reach into the reserved labels 0..16, or beyond 2^20.
    #[error("invalid label plan: {0}")]
    Invalid(&'static str),
}

/// Largest MPLS label value + 1 (20-bit field).
pub const LABEL_SPACE: u32 = 1 << 20;
/// Labels 0..16 are reserved (RFC 3032).
pub const FIRST_UNRESERVED_LABEL: u32 = 16;

/// Where the two label blocks lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelPlan {
    /// First label of block 0 and of block 1.
    pub block_base: [u32; 2],
    /// Labels per block (maximum number of gateways).
    pub block_size: u32,
}

impl Default for LabelPlan {
    /// Block 0 = 1000..5096, block 1 = 6000..10096 (4096 gateways each):
    /// small enough for a label-indexed LFIB array, and readable in captures.
    fn default() -> Self {
        Self {
            block_base: [1000, 6000],
            block_size: 4096,
        }
    }
}

impl LabelPlan {
    /// Checks that the blocks are disjoint and inside the label space.
    pub fn validate(&self) -> Result<(), LabelError> {
        let [a, b] = self.block_base;
        let s = self.block_size;
        if s == 0 {
            return Err(LabelError::Invalid("empty blocks"));
        }
        if a < FIRST_UNRESERVED_LABEL || b < FIRST_UNRESERVED_LABEL {
            return Err(LabelError::Invalid(
                "block inside the reserved labels 0..16",
            ));
        }
        if u64::from(a.max(b)) + u64::from(s) > u64::from(LABEL_SPACE) {
            return Err(LabelError::Invalid("block beyond the 20-bit label space"));
        }
        if a.max(b) - a.min(b) < s {
            return Err(LabelError::Invalid("blocks overlap"));
        }
        Ok(())
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

    /// The `(block, gid)` a label stands for, if it is a node label.
    pub fn decode(&self, label: u32) -> Option<(usize, u32)> {
        (0..2).find_map(|b| {
            let base = self.block_base[b];
            (label >= base && label - base < self.block_size).then(|| (b, label - base))
        })
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
        };
        assert!(bad.validate().is_err());
    }
}
