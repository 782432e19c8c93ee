//! What a worker does after a poll that received nothing.
//!
//! `busy` spins: lowest latency, one full core per worker whatever the
//! load. `adaptive` (as DPDK's l3fwd-power and VPP's adaptive mode) spins
//! for a few empty polls, then yields the core, then sleeps for
//! progressively longer naps of 10 us up to 1 ms, and is back to spinning
//! on the first poll that brings a frame. An idle adaptive worker wakes
//! about a thousand times a second (well under 5% of a core); the first
//! frame after a quiet spell waits at most one nap (~1 ms) in its RX ring.

use crate::config::Idle;
use std::time::Duration;

/// Empty polls spent spinning before yielding.
const SPIN_POLLS: u32 = 64;
/// Empty polls spent yielding before napping.
const YIELD_POLLS: u32 = 128;
/// Shortest nap.
const MIN_NAP_US: u64 = 10;
/// Longest nap.
pub const MAX_NAP: Duration = Duration::from_millis(1);
/// Naps taken at each length before doubling it.
const NAPS_PER_STEP: u32 = 8;

/// A worker's idle state under one policy.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: Idle,
    empty: u32,
}

impl Backoff {
    /// Fresh state under `policy`.
    pub fn new(policy: Idle) -> Self {
        Backoff { policy, empty: 0 }
    }

    /// A poll brought frames: back to full speed.
    #[inline]
    pub fn traffic(&mut self) {
        self.empty = 0;
    }

    /// A poll brought nothing: spin, yield or nap as the policy says.
    #[inline]
    pub fn idle(&mut self) {
        if self.policy == Idle::Busy {
            return;
        }
        self.empty = self.empty.saturating_add(1);
        if let Some(nap) = self.nap() {
            std::thread::sleep(nap);
        } else if self.empty > SPIN_POLLS {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }

    /// True once the worker has backed off to sleeping.
    pub fn is_napping(&self) -> bool {
        self.nap().is_some()
    }

    /// The nap the next empty poll takes, if it has come to that.
    fn nap(&self) -> Option<Duration> {
        if self.policy == Idle::Busy || self.empty <= YIELD_POLLS {
            return None;
        }
        let step = ((self.empty - YIELD_POLLS - 1) / NAPS_PER_STEP).min(16);
        let us = (MIN_NAP_US << step).min(MAX_NAP.as_micros() as u64);
        Some(Duration::from_micros(us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_backs_off_to_the_longest_nap_and_recovers() {
        let mut b = Backoff::new(Idle::Adaptive);
        b.empty = YIELD_POLLS;
        assert!(!b.is_napping());
        b.empty += 1;
        assert_eq!(b.nap(), Some(Duration::from_micros(MIN_NAP_US)));
        b.empty = 10_000;
        assert_eq!(b.nap(), Some(MAX_NAP));
        b.traffic();
        assert!(!b.is_napping());
    }

    #[test]
    fn busy_never_naps() {
        let mut b = Backoff::new(Idle::Busy);
        for _ in 0..1000 {
            b.idle();
        }
        assert!(!b.is_napping());
    }
}
