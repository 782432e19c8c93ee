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
//! second (well under 5% of a core). A nap is a wait on the ports where
//! the backend has something to wait on ([`Port::wait_readable`]: AF_XDP
//! waits in poll(2) on its sockets), so the first frame after a quiet
//! spell wakes the worker at once, and a few frames that end such a wait
//! leave the nap as it is (only full bursts bring back spinning). The
//! control thread's frames to send wake it too, so such a worker naps up
//! to 10 ms ([`Backoff::waking`]): an idle one wakes about a hundred times
//! a second plus once per frame. Elsewhere (memory, pcap, DPDK) a frame
//! waits at most one nap (~1 ms) in its RX ring.
//!
//! [`Port::wait_readable`]: crate::io::Port::wait_readable

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
/// Longest nap of a worker that a frame on its ports or one queued by the
/// control thread wakes ([`Backoff::waking`]): the nap then bounds only
/// how soon it sees its stop flag and publishes its counters.
pub const MAX_WAKING_NAP: Duration = Duration::from_millis(10);
/// Naps taken at each length before doubling it.
const NAPS_PER_STEP: u32 = 8;

/// The count of empty polls at which the nap reaches `longest`: the
/// backoff goes no further, so one frame after any quiet spell halves it.
const fn longest_at(longest: Duration) -> u32 {
    let mut steps = 0;
    while (MIN_NAP_US << steps) < longest.as_micros() as u64 {
        steps += 1;
    }
    YIELD_POLLS + 1 + NAPS_PER_STEP * steps
}

/// [`longest_at`] of [`MAX_NAP`].
const LONGEST_NAP_AT: u32 = longest_at(MAX_NAP);

/// A worker's idle state under one policy.
#[derive(Clone, Debug)]
pub struct Backoff {
    policy: Idle,
    empty: u32,
    longest: Duration,
    longest_at: u32,
}

impl Backoff {
    /// Fresh state under `policy`, napping up to [`MAX_NAP`].
    pub fn new(policy: Idle) -> Self {
        Backoff {
            policy,
            empty: 0,
            longest: MAX_NAP,
            longest_at: LONGEST_NAP_AT,
        }
    }

    /// As [`Backoff::new`] for a worker whose nap a frame ends, on its
    /// ports or from the control thread: naps up to [`MAX_WAKING_NAP`].
    pub fn waking(policy: Idle) -> Self {
        Backoff {
            longest: MAX_WAKING_NAP,
            longest_at: longest_at(MAX_WAKING_NAP),
            ..Backoff::new(policy)
        }
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

    /// A poll brought `n` frames to a worker whose nap is a wait that a
    /// frame ends ([`Port::WAKES_ON_RX`]): a few frames leave the nap as it
    /// is (it no longer bounds their wait, and shortening it would only
    /// wake an idle worker more often); a full burst is load, and halves
    /// it as [`Backoff::traffic`] does (a few bring back spinning).
    ///
    /// [`Port::WAKES_ON_RX`]: crate::io::Port::WAKES_ON_RX
    #[inline]
    pub fn traffic_woken(&mut self, n: usize) {
        if n >= crate::frame::BURST || !self.is_napping() {
            self.traffic();
        }
    }

    /// A poll brought nothing: spin, yield or nap as the policy says.
    #[inline]
    pub fn idle(&mut self) {
        self.idle_with(std::thread::sleep);
    }

    /// As [`Backoff::idle`], napping with `nap` (given the nap's length):
    /// a worker whose ports can wake it waits on them instead of sleeping.
    #[inline]
    pub fn idle_with(&mut self, nap: impl FnOnce(Duration)) {
        if self.policy == Idle::Busy {
            return;
        }
        self.empty = (self.empty + 1).min(self.longest_at);
        if let Some(d) = self.nap() {
            nap(d);
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
        let us = (MIN_NAP_US << step).min(self.longest.as_micros() as u64);
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
    fn a_worker_woken_by_its_frames_keeps_its_nap_until_a_full_burst() {
        let mut b = Backoff::waking(Idle::Adaptive);
        for _ in 0..10_000 {
            b.idle_with(|_| {});
        }
        assert_eq!(b.nap(), Some(MAX_WAKING_NAP));
        // Sparse frames, each waking the wait: the nap stays the longest.
        for _ in 0..100 {
            b.traffic_woken(1);
            assert_eq!(b.nap(), Some(MAX_WAKING_NAP));
        }
        // Full bursts are load: each halves the nap, as traffic() does,
        // and a few bring back spinning.
        b.traffic_woken(crate::frame::BURST);
        assert_eq!(
            b.nap(),
            Some(MAX_WAKING_NAP / 2 + Duration::from_micros(120))
        );
        let mut polls = 1;
        while b.is_napping() {
            b.traffic_woken(crate::frame::BURST);
            polls += 1;
        }
        assert!(polls <= 12, "{polls} full bursts");
        assert_eq!(b.empty, 0);
        // Not napping: a frame keeps the worker spinning, as traffic() does.
        b.empty = SPIN_POLLS;
        b.traffic_woken(1);
        assert_eq!(b.empty, 0);
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
