//! What a worker does after a poll that received nothing.
//!
//! `busy` spins: lowest latency, one full core per worker whatever the
//! load. `adaptive` (as DPDK's l3fwd-power and VPP's adaptive mode) spins
//! for a few empty polls, then yields the core, then sleeps for
//! progressively longer naps of 10 us up to 1 ms. A poll that brings
//! frames after a nap halves the nap rather than going back to spinning:
//! sparse traffic (BFD, keepalives, a 1000 pps stream) keeps the worker
//! napping at about an eighth of the gap between frames, and only traffic
//! that finds frames at the shortest nap brings it back to spinning, a few
//! polls after a burst begins. So a host that runs many lightly loaded
//! nodes (the netns mesh) is not spent on spins and yields after every
//! control frame. An idle adaptive worker wakes about a thousand times a
//! second (well under 5% of a core); the first frame after a quiet spell
//! waits at most one nap (~1 ms) in its RX ring.

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

/// The count of empty polls at which the nap reaches [`MAX_NAP`]: the
/// backoff goes no further, so one frame after any quiet spell halves it.
const LONGEST_NAP_AT: u32 = {
    let mut steps = 0;
    while (MIN_NAP_US << steps) < MAX_NAP.as_micros() as u64 {
        steps += 1;
    }
    YIELD_POLLS + 1 + NAPS_PER_STEP * steps
};

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

    /// A poll brought frames: from a nap, half the nap; from the shortest
    /// nap, spinning or yielding, back to full speed.
    #[inline]
    pub fn traffic(&mut self) {
        self.empty = if self.empty > YIELD_POLLS + NAPS_PER_STEP {
            self.empty - NAPS_PER_STEP
        } else {
            0
        };
    }

    /// A poll brought nothing: spin, yield or nap as the policy says.
    #[inline]
    pub fn idle(&mut self) {
        if self.policy == Idle::Busy {
            return;
        }
        self.empty = (self.empty + 1).min(LONGEST_NAP_AT);
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
        for _ in 0..10_000 {
            b.empty = (b.empty + 1).min(LONGEST_NAP_AT);
        }
        assert_eq!(b.empty, LONGEST_NAP_AT);
        assert_eq!(b.nap(), Some(MAX_NAP));
        b.empty -= 1;
        assert!(b.nap() < Some(MAX_NAP), "the cap is the first longest nap");
        b.empty = YIELD_POLLS + NAPS_PER_STEP;
        b.traffic();
        assert!(!b.is_napping());
    }

    #[test]
    fn a_frame_after_a_nap_halves_it_and_a_burst_brings_back_spinning() {
        let mut b = Backoff::new(Idle::Adaptive);
        // Back off to the longest nap, as a quiet worker does.
        b.empty = LONGEST_NAP_AT;
        let longest = b.empty;
        b.traffic();
        let half = b.nap().expect("still napping after one frame");
        assert!(half < MAX_NAP && half >= MAX_NAP / 2, "{half:?}");
        // A poll that finds frames every time: spinning within a few polls.
        let mut polls = 1;
        while b.is_napping() {
            b.traffic();
            polls += 1;
        }
        assert!(polls <= 8, "{polls} polls from {longest}");
        assert_eq!(b.empty, 0);
    }

    #[test]
    fn sparse_frames_keep_the_worker_napping() {
        // One frame every 5 ms: the nap settles where about eight naps fit
        // between two frames, and never falls back to spinning.
        let mut b = Backoff::new(Idle::Adaptive);
        b.empty = LONGEST_NAP_AT;
        let mut spun = 0;
        for _ in 0..1000 {
            b.traffic();
            let mut slept = Duration::ZERO;
            while slept < Duration::from_millis(5) {
                match b.nap() {
                    Some(n) => slept += n,
                    None => {
                        spun += 1;
                        slept += Duration::from_micros(1);
                    }
                }
                b.empty = (b.empty + 1).min(LONGEST_NAP_AT);
            }
        }
        assert_eq!(spun, 0);
        assert!(b.nap() >= Some(Duration::from_micros(320)), "{:?}", b.nap());
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
