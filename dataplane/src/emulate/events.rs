//! The discrete-event queue: what happens next, in virtual nanoseconds.
//! Events at one instant run in the order they were scheduled, so a run is
//! deterministic.

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
}

/// Events ordered by time, then by the order they were scheduled.
#[derive(Debug, Default)]
pub struct Events {
    heap: BinaryHeap<Reverse<(u64, u64, Event)>>,
    seq: u64,
    /// Events popped so far.
    pub handled: u64,
}

impl Events {
    /// Schedules `ev` at `at_ns`.
    #[inline]
    pub fn at(&mut self, at_ns: u64, ev: Event) {
        self.seq += 1;
        self.heap.push(Reverse((at_ns, self.seq, ev)));
    }

    /// The next event no later than `until_ns`, removed.
    #[inline]
    pub fn pop_until(&mut self, until_ns: u64) -> Option<(u64, Event)> {
        let Reverse((t, _, _)) = self.heap.peek()?;
        if *t > until_ns {
            return None;
        }
        let Reverse((t, _, ev)) = self.heap.pop()?;
        self.handled += 1;
        Some((t, ev))
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
}
