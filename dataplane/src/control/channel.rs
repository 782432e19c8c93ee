//! The channel between a node's workers and its control thread: frames
//! for the node itself go up (punt), the control thread's own packets go
//! down (inject), as VPP's punt and inject nodes do.
//!
//! Each worker has its own pair of bounded lock-free queues of fixed-size
//! buffers, allocated once: a worker that punts copies the frame into a
//! free buffer (no allocation, no lock, no system call) and one that
//! injects copies the control thread's bytes into a buffer of its backend.
//! Neither side ever waits for the other: a full queue is a counted drop.
//! In front of the punt queue a policer (a token bucket per protocol
//! class) keeps a flood of packets to the node from costing the control
//! thread more than the configured rates.

use crate::config::PuntConfig;
use crate::frame::PortId;
use crossbeam::queue::ArrayQueue;

/// Largest frame the channel carries either way; longer punted frames are
/// dropped as `oversize` (control packets are small).
pub const SLOT: usize = 2048;

/// Frames each worker's inject queue holds.
pub const INJECT_QUEUE: usize = 512;

/// One frame in the channel: a fixed buffer, reused.
pub struct Slot {
    /// The port it arrived on (punt) or leaves by (inject).
    pub port: PortId,
    /// When the worker received it (`worker::now_ns`; 0 for inject).
    pub stamp_ns: u64,
    /// For a dropped packet reported so that its sender can be told (an
    /// ICMP error): why it was dropped. The bytes then start at its IP
    /// header.
    pub error: Option<crate::drop_reason::DropReason>,
    len: u16,
    data: [u8; SLOT],
}

impl Slot {
    fn boxed() -> Box<Slot> {
        Box::new(Slot {
            port: 0,
            stamp_ns: 0,
            error: None,
            len: 0,
            data: [0; SLOT],
        })
    }

    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }

    /// Replaces the frame with `bytes`; false (and nothing written) when
    /// they do not fit.
    fn fill(&mut self, bytes: &[u8]) -> bool {
        match self.data.get_mut(..bytes.len()) {
            Some(d) => {
                d.copy_from_slice(bytes);
                self.len = bytes.len() as u16;
                true
            }
            None => false,
        }
    }
}

/// A bounded queue of filled slots and the free slots behind it.
struct SlotQueue {
    full: ArrayQueue<Box<Slot>>,
    free: ArrayQueue<Box<Slot>>,
}

impl SlotQueue {
    fn new(depth: usize) -> Self {
        let depth = depth.max(1);
        let free = ArrayQueue::new(depth);
        for _ in 0..depth {
            let _ = free.push(Slot::boxed());
        }
        SlotQueue {
            full: ArrayQueue::new(depth),
            free,
        }
    }

    /// Copies `bytes` into a free slot and queues it.
    fn put(
        &self,
        port: PortId,
        stamp_ns: u64,
        error: Option<crate::drop_reason::DropReason>,
        bytes: &[u8],
    ) -> Result<(), Refusal> {
        let mut s = self.free.pop().ok_or(Refusal::Full)?;
        if !s.fill(bytes) {
            let _ = self.free.push(s);
            return Err(Refusal::TooLong);
        }
        s.port = port;
        s.stamp_ns = stamp_ns;
        s.error = error;
        // Slots only ever circulate between the two queues, each as deep
        // as there are slots: the push cannot fail.
        if let Err(s) = self.full.push(s) {
            let _ = self.free.push(s);
            return Err(Refusal::Full);
        }
        Ok(())
    }

    /// The oldest queued slot, if any; give it back with [`SlotQueue::recycle`].
    fn take(&self) -> Option<Box<Slot>> {
        self.full.pop()
    }

    fn recycle(&self, s: Box<Slot>) {
        let _ = self.free.push(s);
    }
}

/// Why a frame did not enter a queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Every slot is in use.
    #[error("the queue is full")]
    Full,
    /// The frame is longer than a slot.
    #[error("longer than {SLOT} bytes")]
    TooLong,
}

/// The protocol classes the policer meters separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PuntClass {
    /// ARP.
    Arp,
    /// ICMP.
    Icmp,
    /// MPLS echo (UDP 3503).
    LspPing,
    /// BFD (UDP 3784 single hop, 4784 multihop).
    Bfd,
    /// IKE (UDP 500, 4500).
    Ike,
    /// Flooding: link-state notices and acks (UDP 7784).
    Flood,
    /// Anything else.
    Other,
}

impl PuntClass {
    /// Number of classes.
    pub const COUNT: usize = 7;

    /// The class of a punted frame (as received: Ethernet, any VLAN tags,
    /// any label stack, then ARP or IPv4).
    pub fn of(frame: &[u8]) -> PuntClass {
        use crate::packet::ethernet::ethertype;
        let Ok(l2) = crate::packet::vlan::parse_l2(frame) else {
            return PuntClass::Other;
        };
        let mut at = l2.header_len;
        match l2.ethertype {
            ethertype::ARP => return PuntClass::Arp,
            ethertype::IPV4 => {}
            ethertype::MPLS => {
                // Up to eight entries, to the bottom of the stack.
                let mut bottom = false;
                for _ in 0..8 {
                    let Some(e) = frame.get(at..at + 4) else {
                        return PuntClass::Other;
                    };
                    at += 4;
                    if e[2] & 1 == 1 {
                        bottom = true;
                        break;
                    }
                }
                if !bottom {
                    return PuntClass::Other;
                }
            }
            _ => return PuntClass::Other,
        }
        let (Some(&vihl), Some(&proto)) = (frame.get(at), frame.get(at + 9)) else {
            return PuntClass::Other;
        };
        let ihl = usize::from(vihl & 0x0f) * 4;
        match proto {
            crate::packet::ipv4::protocol::ICMP => PuntClass::Icmp,
            crate::packet::ipv4::protocol::UDP => {
                let port = frame
                    .get(at + ihl + 2..at + ihl + 4)
                    .map_or(0, |p| u16::from_be_bytes([p[0], p[1]]));
                match port {
                    3503 => PuntClass::LspPing,
                    3784 | 4784 => PuntClass::Bfd,
                    500 | 4500 => PuntClass::Ike,
                    meshplane_control::notice::UDP_PORT => PuntClass::Flood,
                    _ => PuntClass::Other,
                }
            }
            _ => PuntClass::Other,
        }
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens, in units of 1e-9 token (one token per `1e9 / rate` ns).
    nano_tokens: u64,
    last_ns: u64,
    rate: u64,
    burst_nano: u64,
}

impl Bucket {
    fn new(rate_pps: u32) -> Self {
        let rate = u64::from(rate_pps);
        // A tenth of a second's worth, at least 8 packets.
        let burst = (rate / 10).max(8).min(rate.max(1));
        Bucket {
            nano_tokens: burst * 1_000_000_000,
            last_ns: 0,
            rate,
            burst_nano: burst * 1_000_000_000,
        }
    }

    /// Takes one token at time `now_ns`, if there is one.
    #[inline]
    fn take(&mut self, now_ns: u64) -> bool {
        if self.rate == 0 {
            return false;
        }
        let dt = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        self.nano_tokens = self
            .nano_tokens
            .saturating_add(dt.saturating_mul(self.rate))
            .min(self.burst_nano);
        match self.nano_tokens.checked_sub(1_000_000_000) {
            Some(left) => {
                self.nano_tokens = left;
                true
            }
            None => false,
        }
    }
}

/// A worker's control-plane policer: one token bucket per [`PuntClass`].
#[derive(Clone, Debug)]
pub struct Policer {
    buckets: [Bucket; PuntClass::COUNT],
}

impl Policer {
    /// A policer with the rates of `c`.
    pub fn new(c: &PuntConfig) -> Self {
        let b = Bucket::new;
        Policer {
            buckets: [
                b(c.arp_pps),
                b(c.icmp_pps),
                b(c.lsp_ping_pps),
                b(c.bfd_pps),
                b(c.ike_pps),
                b(c.flood_pps),
                b(c.other_pps),
            ],
        }
    }

    /// True when a packet of `class` arriving at `now_ns` is within its rate.
    #[inline]
    pub fn admit(&mut self, class: PuntClass, now_ns: u64) -> bool {
        self.buckets[class as usize].take(now_ns)
    }
}

/// One worker's end of the channel, shared (`Arc`) with the control thread.
pub struct WorkerChannel {
    punt: SlotQueue,
    inject: SlotQueue,
    /// Signalled with every frame queued to inject: a worker waiting for
    /// frames on its ports (AF_XDP, in poll(2)) waits on it too.
    wake: Option<std::os::fd::OwnedFd>,
}

impl WorkerChannel {
    /// A channel whose punt queue holds `punt_depth` frames.
    pub fn new(punt_depth: usize) -> Self {
        use rustix::event::{eventfd, EventfdFlags};
        WorkerChannel {
            punt: SlotQueue::new(punt_depth),
            inject: SlotQueue::new(INJECT_QUEUE),
            // Without one (no descriptor left), a waiting worker sees the
            // frames at the end of its nap.
            wake: eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).ok(),
        }
    }

    /// Worker side: queues a copy of a frame for the node, received on
    /// `port` at `stamp_ns`.
    #[inline]
    pub fn punt(&self, port: PortId, stamp_ns: u64, frame: &[u8]) -> Result<(), Refusal> {
        self.punt.put(port, stamp_ns, None, frame)
    }

    /// Worker side: queues a copy of an IP packet received on `port` and
    /// dropped for `reason`, for the control thread to tell its sender.
    #[inline]
    pub fn punt_error(
        &self,
        port: PortId,
        stamp_ns: u64,
        reason: crate::drop_reason::DropReason,
        packet: &[u8],
    ) -> Result<(), Refusal> {
        self.punt.put(port, stamp_ns, Some(reason), packet)
    }

    /// Control side: the oldest punted frame, if any. Hand it back with
    /// [`WorkerChannel::done`].
    pub fn next_punted(&self) -> Option<Box<Slot>> {
        self.punt.take()
    }

    /// Control side: returns a punted frame's slot.
    pub fn done(&self, s: Box<Slot>) {
        self.punt.recycle(s)
    }

    /// Control side: queues a complete frame to send on `port`.
    pub fn inject(&self, port: PortId, frame: &[u8]) -> Result<(), Refusal> {
        self.inject.put(port, 0, None, frame)?;
        if let Some(fd) = &self.wake {
            // Non-blocking; a counter that is already set wakes all the same.
            let _ = rustix::io::write(fd, &1u64.to_ne_bytes());
        }
        Ok(())
    }

    /// Worker side: what to wait on, beside its ports, for the frames the
    /// control thread queues (readable once one is queued).
    pub fn wake_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.wake.as_ref().map(std::os::fd::AsFd::as_fd)
    }

    /// Worker side: after a wait that [`WorkerChannel::wake_fd`] ended,
    /// resets it (the queued frames are then taken as usual).
    pub fn clear_wake(&self) {
        if let Some(fd) = &self.wake {
            let mut b = [0u8; 8];
            let _ = rustix::io::read(fd, &mut b);
        }
    }

    /// Worker side: true when the control thread has queued frames (one
    /// look at the queue's ends, for every poll).
    #[inline]
    pub fn has_inject(&self) -> bool {
        !self.inject.full.is_empty()
    }

    /// Worker side: the next frame to inject, if any; give the slot back
    /// with [`WorkerChannel::injected`].
    #[inline]
    pub fn next_inject(&self) -> Option<Box<Slot>> {
        self.inject.take()
    }

    /// Worker side: returns an injected frame's slot.
    #[inline]
    pub fn injected(&self, s: Box<Slot>) {
        self.inject.recycle(s)
    }
}

impl std::fmt::Debug for WorkerChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerChannel")
            .field("punted", &self.punt.full.len())
            .field("to_inject", &self.inject.full.len())
            .finish()
    }
}

/// A worker's handle on its channel: the queues and its own policer.
#[derive(Debug)]
pub struct PuntPath {
    /// The queues, shared with the control thread.
    pub channel: std::sync::Arc<WorkerChannel>,
    /// This worker's policer.
    pub policer: Policer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_circulate_without_loss_and_refuse_when_full() {
        let ch = WorkerChannel::new(4);
        for i in 0..4u8 {
            ch.punt(u16::from(i), 7, &[i; 60]).expect("room");
        }
        assert_eq!(ch.punt(0, 0, &[0; 60]), Err(Refusal::Full));
        assert_eq!(ch.inject(0, &[0; SLOT + 1]), Err(Refusal::TooLong));
        for i in 0..4u8 {
            let s = ch.next_punted().expect("queued");
            assert_eq!(
                (s.port, s.stamp_ns, s.bytes()),
                (u16::from(i), 7, &[i; 60][..])
            );
            ch.done(s);
        }
        assert!(ch.next_punted().is_none());
        // Every slot is back: four more fit.
        for _ in 0..4 {
            ch.punt(0, 0, &[1; 64]).expect("room again");
        }
    }

    #[test]
    fn the_policer_passes_its_rate_and_burst_and_no_more() {
        let mut p = Policer::new(&PuntConfig {
            icmp_pps: 1000,
            ..PuntConfig::default()
        });
        // One second of a flood, a packet every microsecond.
        let admitted = (0..1_000_000u64)
            .filter(|i| p.admit(PuntClass::Icmp, 1_000_000_000 + i * 1000))
            .count();
        // The burst (100) plus 1000 per second.
        assert!((1000..=1101).contains(&admitted), "{admitted}");
        // Classes are metered apart: ARP still has its burst.
        assert!(p.admit(PuntClass::Arp, 2_000_000_000));
        let mut off = Policer::new(&PuntConfig {
            other_pps: 0,
            ..PuntConfig::default()
        });
        assert!(!off.admit(PuntClass::Other, 5));
    }

    #[test]
    fn classes_follow_the_protocol_under_any_labels() {
        let eth = |et: u16| {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            f.extend(et.to_be_bytes());
            f
        };
        let ip = |proto: u8, dport: u16| {
            let mut p = vec![
                0x45, 0, 0, 28, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ];
            p.extend(1234u16.to_be_bytes());
            p.extend(dport.to_be_bytes());
            p.extend([0, 8, 0, 0]);
            p
        };
        let mut arp = eth(0x0806);
        arp.extend([0; 28]);
        assert_eq!(PuntClass::of(&arp), PuntClass::Arp);
        let mut icmp = eth(0x0800);
        icmp.extend(ip(1, 0));
        assert_eq!(PuntClass::of(&icmp), PuntClass::Icmp);
        let mut lsp = eth(0x8847);
        lsp.extend([0, 0x3e, 0x80, 1]); // label 1000, no S bit
        lsp.extend([0, 0x3e, 0x91, 1]); // label 1001, S=1
        lsp.extend(ip(17, 3503));
        assert_eq!(PuntClass::of(&lsp), PuntClass::LspPing);
        for (port, class) in [
            (3784, PuntClass::Bfd),
            (500, PuntClass::Ike),
            (7784, PuntClass::Flood),
            (53, PuntClass::Other),
        ] {
            let mut f = eth(0x0800);
            f.extend(ip(17, port));
            assert_eq!(PuntClass::of(&f), class);
        }
        assert_eq!(PuntClass::of(&lsp[..20]), PuntClass::Other);
        assert_eq!(PuntClass::of(&[]), PuntClass::Other);
    }
}
