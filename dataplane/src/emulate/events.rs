//! The discrete-event queue: what happens next, in virtual nanoseconds.
//! Events at one instant run in the order they were scheduled, so a run is
//! deterministic.
//!
//! A calendar queue: time is cut into buckets of [`BUCKET_NS`], and the
//! [`BUCKETS`] buckets from the current one on (some 134 ms, more than a
//! link's delay or a 10/s flow's period) are a ring of unsorted lists, so
//! scheduling an event there is one push. A bucket is sorted once, when
//! time reaches it; events further ahead wait in a heap until their
//! bucket comes within the ring. Each event carries the number of its
//! scheduling, so ties come out in that order whatever path they took.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Something that happens at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Event {
    /// The constellation's schedule has something to compute or activate.
    Control,
    /// The frame at the head of a link (index) reaches the far end.
    Arrive(u32),
    /// A flow (index) sends its next packet.
    Send(u32),
    /// Frames from a gateway's LAN host (node index) enter the gateway.
    Lan(u32),
    /// A line of progress on stderr.
    Progress,
    /// A scheduled failure or repair (index into the run's list).
    Fail(u32),
}

/// Nanoseconds of one bucket, as a power of two.
const BUCKET_SHIFT: u32 = 11;
/// Nanoseconds of one bucket.
pub const BUCKET_NS: u64 = 1 << BUCKET_SHIFT;
/// Buckets in the ring.
pub const BUCKETS: usize = 1 << 16;

/// (time, scheduling number, event): ordered by time, then scheduling.
type Entry = (u64, u64, Event);

/// Events ordered by time, then by the order they were scheduled.
#[derive(Debug)]
pub struct Events {
    /// The current bucket's events, latest first (the next at the end).
    current: Vec<Entry>,
    /// The current bucket's number (time >> [`BUCKET_SHIFT`]).
    bucket: u64,
    /// Buckets `bucket + 1 .. bucket + BUCKETS`, unsorted, at their
    /// number modulo [`BUCKETS`].
    ring: Vec<Vec<Entry>>,
    /// Events in `ring`.
    in_ring: usize,
    /// Events beyond the ring.
    far: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// Events popped so far.
    pub handled: u64,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            current: Vec::new(),
            bucket: 0,
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_ring: 0,
            far: BinaryHeap::new(),
            seq: 0,
            handled: 0,
        }
    }
}

impl Events {
    /// Schedules `ev` at `at_ns`.
    #[inline]
    pub fn at(&mut self, at_ns: u64, ev: Event) {
        self.seq += 1;
        let e = (at_ns, self.seq, ev);
        let b = at_ns >> BUCKET_SHIFT;
        if b <= self.bucket {
            // Latest first: it goes before everything it does not precede.
            let i = self.current.partition_point(|x| *x > e);
            self.current.insert(i, e);
        } else if b - self.bucket < BUCKETS as u64 {
            self.ring[(b % BUCKETS as u64) as usize].push(e);
            self.in_ring += 1;
        } else {
            self.far.push(Reverse(e));
        }
    }

    /// The next event no later than `until_ns`, removed.
    #[inline]
    pub fn pop_until(&mut self, until_ns: u64) -> Option<(u64, Event)> {
        if self.current.is_empty() {
            self.advance(until_ns >> BUCKET_SHIFT);
        }
        let &(t, _, ev) = self.current.last()?;
        if t > until_ns {
            return None;
        }
        self.current.pop();
        self.handled += 1;
        Some((t, ev))
    }

    /// Moves on to the next bucket that holds an event, if it is not past
    /// bucket `last`, and makes it the current one.
    fn advance(&mut self, last: u64) {
        while self.current.is_empty() {
            let next = if self.in_ring > 0 {
                self.bucket + 1
            } else {
                match self.far.peek() {
                    Some(Reverse((t, _, _))) => t >> BUCKET_SHIFT,
                    None => return,
                }
            };
            if next > last {
                return;
            }
            self.bucket = next;
            // The bucket that has just come within the ring's reach.
            let reach = self.bucket + BUCKETS as u64 - 1;
            while let Some(Reverse(e)) = self.far.peek() {
                let b = e.0 >> BUCKET_SHIFT;
                if b > reach {
                    break;
                }
                let Some(Reverse(e)) = self.far.pop() else {
                    break;
                };
                if b == self.bucket {
                    self.current.push(e);
                } else {
                    self.ring[(b % BUCKETS as u64) as usize].push(e);
                    self.in_ring += 1;
                }
            }
            let slot = &mut self.ring[(self.bucket % BUCKETS as u64) as usize];
            self.in_ring -= slot.len();
            self.current.append(slot);
            self.current.sort_unstable_by(|a, b| b.cmp(a));
        }
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.current.len() + self.in_ring + self.far.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_by_time_then_in_the_order_scheduled() {
        let mut q = Events::default();
        q.at(20, Event::Send(1));
        q.at(10, Event::Send(2));
        q.at(20, Event::Arrive(0));
        q.at(10, Event::Control);
        let got: Vec<_> = std::iter::from_fn(|| q.pop_until(100)).collect();
        assert_eq!(
            got,
            [
                (10, Event::Send(2)),
                (10, Event::Control),
                (20, Event::Send(1)),
                (20, Event::Arrive(0)),
            ]
        );
        q.at(200, Event::Progress);
        assert_eq!(q.pop_until(100), None);
        assert_eq!(q.len(), 1);
    }

    /// The plain model: one heap ordered by (time, scheduling number).
    #[derive(Default)]
    struct Plain {
        heap: BinaryHeap<Reverse<Entry>>,
        seq: u64,
    }

    impl Plain {
        fn at(&mut self, t: u64, ev: Event) {
            self.seq += 1;
            self.heap.push(Reverse((t, self.seq, ev)));
        }
        fn pop_until(&mut self, until: u64) -> Option<(u64, Event)> {
            let Reverse((t, _, _)) = self.heap.peek()?;
            if *t > until {
                return None;
            }
            let Reverse((t, _, ev)) = self.heap.pop()?;
            Some((t, ev))
        }
    }

    /// The calendar gives the plain heap's order, event for event, over
    /// runs that schedule at the current instant, within a bucket, across
    /// the ring and beyond it, with many ties, long gaps, and limits that
    /// stop a pop short (events scheduled from the last time popped on,
    /// as the emulator schedules them).
    #[test]
    fn the_calendar_pops_what_a_plain_heap_pops() {
        let mut rng = 0xca1e_7da2_u64;
        let mut next = move || crate::emulate::next_random(&mut rng);
        let span = BUCKET_NS * BUCKETS as u64;
        for run in 0..40 {
            let (mut cal, mut plain) = (Events::default(), Plain::default());
            let mut now = next() % (span * 3);
            let mut popped = 0;
            for step in 0..20_000 {
                let r = next();
                let ahead = match r % 10 {
                    0 | 1 => 0,
                    2 | 3 => r >> 40 & 63,
                    4 | 5 => (r >> 20) % (BUCKET_NS * 4),
                    6 | 7 => (r >> 20) % span,
                    8 => span - 2 + (r >> 20) % 4,
                    _ => (r >> 20) % (span * 5),
                };
                let ev = match r >> 8 & 3 {
                    0 => Event::Arrive((r >> 12) as u32 % 50),
                    1 => Event::Send((r >> 12) as u32 % 50),
                    2 => Event::Lan((r >> 12) as u32 % 5),
                    _ => Event::Control,
                };
                cal.at(now + ahead, ev);
                plain.at(now + ahead, ev);
                // Pop a few, sometimes up to a limit short of the next.
                for _ in 0..(next() % 3) {
                    let until = match next() % 4 {
                        0 => now + (next() % (BUCKET_NS * 2)),
                        1 => now,
                        _ => u64::MAX,
                    };
                    let (a, b) = (cal.pop_until(until), plain.pop_until(until));
                    assert_eq!(a, b, "run {run}, step {step}");
                    if let Some((t, _)) = a {
                        assert!(t >= now);
                        now = t;
                        popped += 1;
                    }
                }
                assert_eq!(cal.len(), plain.heap.len());
            }
            loop {
                let (a, b) = (cal.pop_until(u64::MAX), plain.pop_until(u64::MAX));
                assert_eq!(a, b, "run {run}: draining");
                if a.is_none() {
                    break;
                }
                popped += 1;
            }
            assert!(cal.is_empty() && popped >= 20_000, "{popped}");
            assert_eq!(cal.handled, popped);
        }
    }
}
