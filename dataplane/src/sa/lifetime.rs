//! SA lifetimes (RFC 4301 §4.4.2.1): soft and hard limits on the packets,
//! the bytes and the seconds an SA may protect.
//!
//! A soft limit asks for a rekey: the SA keeps working and the node reports
//! it once ([`SaLife::take_report`]), for an operator or a key exchange to
//! put a new SA in place. A hard limit expires the SA: the stages drop what
//! would still use it (`sa_expired`). Every limit is optional; the
//! configuration (`[[sa]] lifetime = { ... }`) sets them, and a key exchange
//! may set them on the SAs it installs ([`SaLife::set_lifetime`]).
//!
//! Costs on the data path: the stages count packets and bytes per run of
//! frames on one SA (one atomic add each when the run ends, see
//! `stage::esp`) and read [`SaLife::expired`] once per run. Time is never
//! read per frame: the node's supervising thread calls [`SaLife::tick`]
//! every few milliseconds. A packet or byte limit is therefore checked once
//! per run: one worker overshoots it by at most the rest of the batch it was
//! working on (32 frames), and each worker sending on the same SA at once
//! may do the same.
//!
//! An outbound SA without extended sequence numbers (ESN) can number 2^32-1
//! packets and must never wrap. It gets a soft limit [`SEQ_SOFT_32`] and a
//! hard one at the end of its space ([`SEQ_MAX_32`]), both counted in
//! sequence numbers used ([`Limit::Sequence`]), whatever the configuration
//! says: the warning comes 2^28 numbers before the end, and once the space
//! is used up its frames are dropped as `seq_exhausted`.

use crate::drop_reason::DropReason;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// The last sequence number of an SA without ESN.
pub const SEQ_MAX_32: u64 = u32::MAX as u64;

/// Where an outbound SA without ESN asks for a rekey: 2^28 (about 268
/// million) sequence numbers before the end of its space, some 27 seconds
/// at 10 Mpps.
pub const SEQ_SOFT_32: u64 = (1 << 32) - (1 << 28);

/// What a limit counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Packets the SA protected (outbound: sealed; inbound: authenticated).
    Packets,
    /// Bytes the SA encrypted or decrypted: the inner packets with their
    /// ESP padding and trailer, as both ends of the SA count them.
    Bytes,
    /// Seconds since the SA was installed.
    Seconds,
    /// Sequence numbers used by an outbound SA without ESN (implicit).
    Sequence,
}

impl Limit {
    /// Every kind, in bit order.
    pub const ALL: [Limit; 4] = [
        Limit::Packets,
        Limit::Bytes,
        Limit::Seconds,
        Limit::Sequence,
    ];

    /// How the kind reads in logs and answers.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Packets => "packets",
            Limit::Bytes => "bytes",
            Limit::Seconds => "seconds",
            Limit::Sequence => "sequence numbers",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Limits of one level (soft or hard); `None`: no limit of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Packets.
    pub packets: Option<u64>,
    /// Bytes (see [`Limit::Bytes`]).
    pub bytes: Option<u64>,
    /// Seconds since the SA was installed.
    pub seconds: Option<u64>,
}

impl Limits {
    /// No limit at all.
    pub const NONE: Limits = Limits {
        packets: None,
        bytes: None,
        seconds: None,
    };

    /// True when no kind is limited.
    pub fn is_none(&self) -> bool {
        *self == Limits::NONE
    }

    fn by_kind(&self) -> [(Limit, Option<u64>); 3] {
        [
            (Limit::Packets, self.packets),
            (Limit::Bytes, self.bytes),
            (Limit::Seconds, self.seconds),
        ]
    }
}

/// The lifetime of an SA: soft limits ask for a rekey, hard limits expire
/// it. Each limit is optional; a soft limit is below the hard limit of its
/// kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lifetime {
    /// Reaching any of these asks for a rekey.
    pub soft: Limits,
    /// Reaching any of these expires the SA.
    pub hard: Limits,
}

/// A lifetime that cannot be used, named by its configuration key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifetimeError {
    /// A limit of 0.
    #[error("{field} = 0: a lifetime limit is at least 1 (leave it out for none)")]
    Zero {
        /// `soft_packets`, `hard_bytes`, ...
        field: &'static str,
    },
    /// A soft limit at or above the hard one of its kind.
    #[error("soft_{kind} = {soft} must be below hard_{kind} = {hard}")]
    SoftNotBelowHard {
        /// `packets`, `bytes` or `seconds`.
        kind: &'static str,
        /// The soft limit.
        soft: u64,
        /// The hard limit.
        hard: u64,
    },
    /// A packet limit an SA without ESN can never reach.
    #[error(
        "{field} = {value} is more packets than 32-bit sequence numbers can number ({SEQ_MAX_32}): \
         set esn = true (on both ends of the SA) or lower it"
    )]
    BeyondSequenceSpace {
        /// `soft_packets` or `hard_packets`.
        field: &'static str,
        /// The limit.
        value: u64,
    },
}

impl Lifetime {
    /// No limits.
    pub const NONE: Lifetime = Lifetime {
        soft: Limits::NONE,
        hard: Limits::NONE,
    };

    /// True when nothing is limited.
    pub fn is_none(&self) -> bool {
        self.soft.is_none() && self.hard.is_none()
    }

    /// Checks the limits of an SA with (`esn`) or without extended sequence
    /// numbers: none is 0, each soft limit is below its hard one, and
    /// without ESN no packet limit lies beyond the sequence space.
    pub fn validate(&self, esn: bool) -> Result<(), LifetimeError> {
        const NAMES: [(&str, &str, &str); 3] = [
            ("packets", "soft_packets", "hard_packets"),
            ("bytes", "soft_bytes", "hard_bytes"),
            ("seconds", "soft_seconds", "hard_seconds"),
        ];
        let soft = self.soft.by_kind();
        let hard = self.hard.by_kind();
        for (i, (kind, soft_name, hard_name)) in NAMES.iter().enumerate() {
            let (s, h) = (soft[i].1, hard[i].1);
            if s == Some(0) {
                return Err(LifetimeError::Zero { field: soft_name });
            }
            if h == Some(0) {
                return Err(LifetimeError::Zero { field: hard_name });
            }
            if let (Some(soft), Some(hard)) = (s, h) {
                if soft >= hard {
                    return Err(LifetimeError::SoftNotBelowHard { kind, soft, hard });
                }
            }
        }
        if !esn {
            for (field, v) in [
                ("soft_packets", self.soft.packets),
                ("hard_packets", self.hard.packets),
            ] {
                if let Some(value) = v.filter(|&v| v > SEQ_MAX_32) {
                    return Err(LifetimeError::BeyondSequenceSpace { field, value });
                }
            }
        }
        Ok(())
    }
}

/// Where an SA stands in its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifeState {
    /// No limit reached.
    Active,
    /// A soft limit reached: a rekey is requested; the SA still works.
    SoftReached,
    /// A hard limit reached: the SA protects nothing more.
    Expired,
}

impl LifeState {
    /// `active`, `soft-reached` or `expired`.
    pub fn name(self) -> &'static str {
        match self {
            LifeState::Active => "active",
            LifeState::SoftReached => "soft-reached",
            LifeState::Expired => "expired",
        }
    }
}

/// The limits reached at one level, as a set of kinds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached(u32);

impl Reached {
    /// True when no limit is in the set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when `kind` is in the set.
    pub fn contains(self, kind: Limit) -> bool {
        self.0 & kind.bit() != 0
    }

    /// The kinds in the set, in [`Limit::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Limit> {
        Limit::ALL.into_iter().filter(move |k| self.contains(*k))
    }

    /// The kinds' names (`["packets", "seconds"]`).
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Limit::name).collect()
    }
}

impl std::fmt::Display for Reached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.names().join(", "))
    }
}

/// What [`SaLife::take_report`] has not reported before: each level at
/// most once in the SA's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LifeReport {
    /// The soft limits reached, when newly reported (a rekey request).
    pub soft: Option<Reached>,
    /// The hard limits reached, when newly reported (the SA expired).
    pub hard: Option<Reached>,
}

// Flag bits: the soft limits reached (one bit per `Limit`), the hard ones
// (shifted by HARD), and whether each level has been reported.
const KINDS: u32 = 0xf;
const HARD: u32 = 8;
const SOFT_MASK: u32 = KINDS;
const HARD_MASK: u32 = KINDS << HARD;
const SOFT_REPORTED: u32 = 1 << 16;
const HARD_REPORTED: u32 = 1 << 17;

/// "No limit" in the atomic cells.
const NO_LIMIT: u64 = u64::MAX;

/// One level's limits as the data path reads them (`u64::MAX`: none).
struct LimitCells {
    packets: AtomicU64,
    bytes: AtomicU64,
    seconds: AtomicU64,
}

impl LimitCells {
    fn new(l: &Limits) -> Self {
        let cell = |v: Option<u64>| AtomicU64::new(v.unwrap_or(NO_LIMIT));
        LimitCells {
            packets: cell(l.packets),
            bytes: cell(l.bytes),
            seconds: cell(l.seconds),
        }
    }

    fn store(&self, l: &Limits) {
        self.packets.store(l.packets.unwrap_or(NO_LIMIT), Relaxed);
        self.bytes.store(l.bytes.unwrap_or(NO_LIMIT), Relaxed);
        self.seconds.store(l.seconds.unwrap_or(NO_LIMIT), Relaxed);
    }

    fn load(&self) -> Limits {
        let get = |c: &AtomicU64| Some(c.load(Relaxed)).filter(|&v| v != NO_LIMIT);
        Limits {
            packets: get(&self.packets),
            bytes: get(&self.bytes),
            seconds: get(&self.seconds),
        }
    }

    /// The kinds among packets and bytes whose limit the counts reach.
    #[inline]
    fn reached_by_counts(&self, packets: u64, bytes: u64) -> u32 {
        (u32::from(packets >= self.packets.load(Relaxed)) * Limit::Packets.bit())
            | (u32::from(bytes >= self.bytes.load(Relaxed)) * Limit::Bytes.bit())
    }
}

/// An installed SA's lifetime: its limits, what it has protected, and
/// which limits it has reached. Shared by the workers (counting, reading
/// [`SaLife::expired`]) and the supervising thread ([`SaLife::tick`],
/// [`SaLife::take_report`]); survives table publications with its SA.
pub struct SaLife {
    soft: LimitCells,
    hard: LimitCells,
    packets: AtomicU64,
    bytes: AtomicU64,
    flags: AtomicU32,
    installed: Instant,
    /// The implicit sequence-number limits apply (outbound, no ESN).
    seq_space: bool,
}

impl SaLife {
    /// The lifetime of an SA installed now; `seq_space` for an outbound SA
    /// without ESN (the implicit [`Limit::Sequence`] limits).
    pub fn new(lifetime: &Lifetime, seq_space: bool) -> Self {
        Self::installed_at(lifetime, seq_space, Instant::now())
    }

    /// As [`SaLife::new`], for an SA installed at `installed`.
    pub fn installed_at(lifetime: &Lifetime, seq_space: bool, installed: Instant) -> Self {
        SaLife {
            soft: LimitCells::new(&lifetime.soft),
            hard: LimitCells::new(&lifetime.hard),
            packets: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            flags: AtomicU32::new(0),
            installed,
            seq_space,
        }
    }

    /// The limits in force (without the implicit sequence-number ones).
    pub fn lifetime(&self) -> Lifetime {
        Lifetime {
            soft: self.soft.load(),
            hard: self.hard.load(),
        }
    }

    /// Puts new limits in force (a reload, a key exchange). What the SA has
    /// protected and how long it has lived stay; a limit it already reached
    /// stays reached, and an expired SA stays expired. Counts already past
    /// a new limit reach it at once; its age, at the next [`SaLife::tick`].
    pub fn set_lifetime(&self, l: &Lifetime) {
        self.soft.store(&l.soft);
        self.hard.store(&l.hard);
        self.count(0, 0);
    }

    /// When the SA was installed.
    pub fn installed(&self) -> Instant {
        self.installed
    }

    /// True when the implicit sequence-number limits apply.
    pub fn has_sequence_limit(&self) -> bool {
        self.seq_space
    }

    /// Packets protected so far.
    pub fn packets(&self) -> u64 {
        self.packets.load(Relaxed)
    }

    /// Bytes protected so far ([`Limit::Bytes`]).
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Relaxed)
    }

    /// Whole seconds since the SA was installed, at `now`.
    pub fn age_s(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.installed).as_secs()
    }

    /// True once a hard limit is reached: the SA must protect nothing more.
    /// Read once per run of frames.
    #[inline]
    pub fn expired(&self) -> bool {
        self.flags.load(Relaxed) & HARD_MASK != 0
    }

    /// Why a frame on an expired SA is dropped: `seq_exhausted` when only
    /// the sequence space ran out, `sa_expired` for a lifetime limit.
    pub fn refusal(&self) -> DropReason {
        if self.flags.load(Relaxed) & HARD_MASK == Limit::Sequence.bit() << HARD {
            DropReason::SeqExhausted
        } else {
            DropReason::SaExpired
        }
    }

    /// Adds what one run of frames protected (one atomic add per counter)
    /// and notes the packet and byte limits the totals reach.
    #[inline]
    pub fn count(&self, packets: u64, bytes: u64) {
        let p = self
            .packets
            .fetch_add(packets, Relaxed)
            .wrapping_add(packets);
        let b = self.bytes.fetch_add(bytes, Relaxed).wrapping_add(bytes);
        let bits = self.soft.reached_by_counts(p, b) | (self.hard.reached_by_counts(p, b) << HARD);
        if bits != 0 {
            self.raise(bits);
        }
    }

    /// Notes that an outbound SA has handed out sequence numbers up to
    /// `last` (with the implicit limits, see the module documentation).
    #[inline]
    pub fn note_seq(&self, last: u64) {
        if self.seq_space && last >= SEQ_SOFT_32 {
            self.seq_crossed(last);
        }
    }

    #[cold]
    fn seq_crossed(&self, last: u64) {
        let mut bits = Limit::Sequence.bit();
        if last >= SEQ_MAX_32 {
            bits |= Limit::Sequence.bit() << HARD;
        }
        self.raise(bits);
    }

    /// Notes the time limits the SA's age reaches at `now`. Called by the
    /// supervising thread, never per frame.
    pub fn tick(&self, now: Instant) {
        let age = self.age_s(now);
        let soft = u32::from(age >= self.soft.seconds.load(Relaxed)) * Limit::Seconds.bit();
        let hard = u32::from(age >= self.hard.seconds.load(Relaxed)) * Limit::Seconds.bit();
        let bits = soft | hard << HARD;
        if bits != 0 {
            self.raise(bits);
        }
    }

    #[inline]
    fn raise(&self, bits: u32) {
        if self.flags.load(Relaxed) & bits != bits {
            self.flags.fetch_or(bits, Relaxed);
        }
    }

    /// Where the SA stands.
    pub fn state(&self) -> LifeState {
        let f = self.flags.load(Relaxed);
        if f & HARD_MASK != 0 {
            LifeState::Expired
        } else if f & SOFT_MASK != 0 {
            LifeState::SoftReached
        } else {
            LifeState::Active
        }
    }

    /// The soft limits reached so far.
    pub fn soft_reached(&self) -> Reached {
        Reached(self.flags.load(Relaxed) & SOFT_MASK)
    }

    /// The hard limits reached so far.
    pub fn hard_reached(&self) -> Reached {
        Reached((self.flags.load(Relaxed) & HARD_MASK) >> HARD)
    }

    /// True once a soft limit is reached: the SA wants replacing (a key
    /// exchange acts on this; until then the SA keeps working).
    pub fn rekey_requested(&self) -> bool {
        !self.soft_reached().is_empty()
    }

    /// The levels reached and not reported before: a soft limit (the rekey
    /// request) and a hard one (the expiry) each come out once in the SA's
    /// life, whoever asks.
    pub fn take_report(&self) -> LifeReport {
        let f = self.flags.load(Relaxed);
        let mut want = 0;
        if f & SOFT_MASK != 0 && f & SOFT_REPORTED == 0 {
            want |= SOFT_REPORTED;
        }
        if f & HARD_MASK != 0 && f & HARD_REPORTED == 0 {
            want |= HARD_REPORTED;
        }
        if want == 0 {
            return LifeReport::default();
        }
        let prev = self.flags.fetch_or(want, Relaxed);
        let newly = want & !prev;
        LifeReport {
            soft: (newly & SOFT_REPORTED != 0).then_some(Reached(prev & SOFT_MASK)),
            hard: (newly & HARD_REPORTED != 0).then_some(Reached((prev & HARD_MASK) >> HARD)),
        }
    }

    /// What is left of each (soft, hard) limit at `now` (`Some(0)`:
    /// reached); the implicit sequence-number ones are [`SaLife::seq_left`].
    pub fn left(&self, now: Instant) -> (Limits, Limits) {
        let (p, b, age) = (self.packets(), self.bytes(), self.age_s(now));
        let left = |l: Limits| Limits {
            packets: l.packets.map(|v| v.saturating_sub(p)),
            bytes: l.bytes.map(|v| v.saturating_sub(b)),
            seconds: l.seconds.map(|v| v.saturating_sub(age)),
        };
        let l = self.lifetime();
        (left(l.soft), left(l.hard))
    }

    /// Sequence numbers left before the implicit soft and hard limits, for
    /// an outbound SA without ESN that has used numbers up to `seq`.
    pub fn seq_left(&self, seq: u64) -> Option<(u64, u64)> {
        self.seq_space.then(|| {
            (
                SEQ_SOFT_32.saturating_sub(seq),
                SEQ_MAX_32.saturating_sub(seq),
            )
        })
    }
}

impl std::fmt::Debug for SaLife {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaLife")
            .field("lifetime", &self.lifetime())
            .field("packets", &self.packets())
            .field("bytes", &self.bytes())
            .field("state", &self.state())
            .finish()
    }
}

/// What one run of frames on one SA protected, added to the SA's counts
/// when the run ends (one atomic add per counter per run): the stages keep
/// one per batch and direction, and it flushes when dropped with them.
#[derive(Debug, Default)]
pub struct RunCount<'t> {
    life: Option<&'t SaLife>,
    packets: u64,
    bytes: u64,
}

impl<'t> RunCount<'t> {
    /// Ends the current run (if any) and starts one on the SA of `life`.
    #[cold]
    pub fn start(&mut self, life: &'t SaLife) {
        self.flush();
        self.life = Some(life);
    }

    /// Counts a frame of `bytes` on the current run's SA.
    #[inline(always)]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }

    /// Counts a frame of `bytes` on the SA of `life`, starting a new run
    /// when that is not the current run's SA.
    #[inline]
    pub fn add_on(&mut self, life: &'t SaLife, bytes: usize) {
        if !self.life.is_some_and(|l| std::ptr::eq(l, life)) {
            self.start(life);
        }
        self.add(bytes);
    }

    /// Adds the run's counts to its SA and ends it.
    #[inline]
    pub fn flush(&mut self) {
        if let Some(life) = self.life.take() {
            if self.packets > 0 {
                life.count(self.packets, self.bytes);
            }
        }
        self.packets = 0;
        self.bytes = 0;
    }
}

impl Drop for RunCount<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn lifetime(soft: Limits, hard: Limits) -> Lifetime {
        Lifetime { soft, hard }
    }

    fn packets(n: u64) -> Limits {
        Limits {
            packets: Some(n),
            ..Limits::NONE
        }
    }

    #[test]
    fn limits_are_validated_by_their_configuration_names() {
        assert_eq!(Lifetime::NONE.validate(false), Ok(()));
        let ok = lifetime(
            Limits {
                packets: Some(10),
                bytes: Some(1000),
                seconds: Some(60),
            },
            Limits {
                packets: Some(20),
                bytes: Some(2000),
                seconds: Some(120),
            },
        );
        assert_eq!(ok.validate(false), Ok(()));
        assert_eq!(lifetime(Limits::NONE, packets(5)).validate(false), Ok(()));
        assert_eq!(lifetime(packets(5), Limits::NONE).validate(false), Ok(()));

        let e = lifetime(packets(20), packets(20))
            .validate(true)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "soft_packets = 20 must be below hard_packets = 20"
        );
        let mut l = ok;
        l.soft.seconds = Some(500);
        assert_eq!(
            l.validate(true).unwrap_err().to_string(),
            "soft_seconds = 500 must be below hard_seconds = 120"
        );
        let mut l = ok;
        l.hard.bytes = Some(0);
        assert_eq!(
            l.validate(true).unwrap_err().to_string(),
            "hard_bytes = 0: a lifetime limit is at least 1 (leave it out for none)"
        );
        let mut l = Lifetime::NONE;
        l.soft.seconds = Some(0);
        assert_eq!(
            l.validate(true),
            Err(LifetimeError::Zero {
                field: "soft_seconds"
            })
        );

        // Without ESN no packet limit lies beyond the sequence space.
        let big = lifetime(Limits::NONE, packets(1 << 33));
        assert_eq!(big.validate(true), Ok(()));
        let e = big.validate(false).unwrap_err().to_string();
        assert!(e.starts_with("hard_packets = 8589934592 is more packets than 32-bit sequence numbers can number (4294967295): set esn = true"), "{e}");
        assert_eq!(
            lifetime(Limits::NONE, packets(SEQ_MAX_32)).validate(false),
            Ok(())
        );
    }

    #[test]
    fn runs_add_to_their_sa_when_they_end() {
        let (a, b) = (
            SaLife::new(&Lifetime::NONE, false),
            SaLife::new(&Lifetime::NONE, false),
        );
        {
            let mut run = RunCount::default();
            run.add_on(&a, 100);
            run.add_on(&a, 50);
            assert_eq!(a.packets(), 0, "counted when the run ends");
            run.add_on(&b, 10);
            assert_eq!((a.packets(), a.bytes()), (2, 150));
            run.add_on(&a, 1);
            assert_eq!((b.packets(), b.bytes()), (1, 10));
        }
        assert_eq!((a.packets(), a.bytes()), (3, 151), "and when dropped");
    }

    #[test]
    fn counts_reach_the_soft_then_the_hard_limit() {
        let life = SaLife::new(&lifetime(packets(100), packets(200)), false);
        assert_eq!(life.state(), LifeState::Active);
        life.count(99, 9900);
        assert_eq!(life.state(), LifeState::Active);
        assert_eq!(life.take_report(), LifeReport::default());
        life.count(1, 100);
        assert_eq!(life.state(), LifeState::SoftReached);
        assert!(life.rekey_requested() && !life.expired());
        let r = life.take_report();
        assert_eq!(r.soft.map(|s| s.to_string()).as_deref(), Some("packets"));
        assert_eq!(r.hard, None);
        // Reported once, however long it stays reached.
        life.count(50, 0);
        assert_eq!(life.take_report(), LifeReport::default());
        life.count(50, 0);
        assert!(life.expired());
        assert_eq!(life.state(), LifeState::Expired);
        assert_eq!(life.refusal(), DropReason::SaExpired);
        let r = life.take_report();
        assert_eq!(
            (r.soft, r.hard.map(|h| h.names())),
            (None, Some(vec!["packets"]))
        );
        assert_eq!(life.take_report(), LifeReport::default());
        assert_eq!((life.packets(), life.bytes()), (200, 10_000));
    }

    #[test]
    fn bytes_count_like_packets() {
        let l = lifetime(
            Limits {
                bytes: Some(1000),
                ..Limits::NONE
            },
            Limits {
                bytes: Some(1500),
                ..Limits::NONE
            },
        );
        let life = SaLife::new(&l, false);
        life.count(3, 999);
        assert_eq!(life.state(), LifeState::Active);
        life.count(1, 1);
        assert!(life.soft_reached().contains(Limit::Bytes));
        life.count(1, 600);
        assert!(life.expired());
        assert_eq!(life.hard_reached().names(), ["bytes"]);
        let (soft, hard) = life.left(Instant::now());
        assert_eq!((soft.bytes, hard.bytes), (Some(0), Some(0)));
    }

    #[test]
    fn the_age_expires_an_sa_only_when_ticked() {
        let t0 = Instant::now();
        let l = lifetime(
            Limits {
                seconds: Some(10),
                ..Limits::NONE
            },
            Limits {
                seconds: Some(30),
                ..Limits::NONE
            },
        );
        let life = SaLife::installed_at(&l, false, t0);
        life.tick(t0 + Duration::from_millis(9999));
        assert_eq!(life.state(), LifeState::Active);
        let (soft, hard) = life.left(t0 + Duration::from_secs(4));
        assert_eq!((soft.seconds, hard.seconds), (Some(6), Some(26)));
        life.tick(t0 + Duration::from_secs(10));
        assert_eq!(life.state(), LifeState::SoftReached);
        assert_eq!(life.soft_reached().names(), ["seconds"]);
        life.tick(t0 + Duration::from_secs(31));
        assert!(life.expired());
        let r = life.take_report();
        assert_eq!(r.soft.map(|s| s.names()), Some(vec!["seconds"]));
        assert_eq!(r.hard.map(|s| s.names()), Some(vec!["seconds"]));
    }

    #[test]
    fn an_sa_without_limits_lives_on() {
        let life = SaLife::new(&Lifetime::NONE, false);
        life.count(u64::MAX / 4, u64::MAX / 4);
        life.tick(Instant::now() + Duration::from_secs(100 * 365 * 86400));
        life.note_seq(u64::MAX - 1);
        assert_eq!(life.state(), LifeState::Active);
        assert_eq!(life.seq_left(5), None);
    }

    #[test]
    fn without_esn_the_sequence_space_warns_then_expires() {
        let life = SaLife::new(&Lifetime::NONE, true);
        life.note_seq(SEQ_SOFT_32 - 1);
        assert_eq!(life.state(), LifeState::Active);
        assert_eq!(
            life.seq_left(SEQ_SOFT_32 - 1),
            Some((1, SEQ_MAX_32 - SEQ_SOFT_32 + 1))
        );
        life.note_seq(SEQ_SOFT_32);
        assert_eq!(life.state(), LifeState::SoftReached);
        assert_eq!(
            life.take_report().soft.map(|s| s.to_string()).as_deref(),
            Some("sequence numbers")
        );
        life.note_seq(SEQ_MAX_32);
        assert!(life.expired());
        // The space ran out: its frames say so.
        assert_eq!(life.refusal(), DropReason::SeqExhausted);
        // A lifetime limit reached as well names the lifetime.
        life.set_lifetime(&lifetime(Limits::NONE, packets(1)));
        life.count(1, 10);
        assert_eq!(life.refusal(), DropReason::SaExpired);
    }

    #[test]
    fn new_limits_apply_to_what_the_sa_already_carried() {
        let life = SaLife::new(&Lifetime::NONE, false);
        life.count(500, 50_000);
        assert_eq!(life.state(), LifeState::Active);
        life.set_lifetime(&lifetime(packets(400), packets(1000)));
        assert_eq!(life.state(), LifeState::SoftReached);
        assert_eq!(life.lifetime(), lifetime(packets(400), packets(1000)));
        // Raising a limit does not take back what was reached.
        life.set_lifetime(&lifetime(packets(4000), packets(10_000)));
        assert_eq!(life.state(), LifeState::SoftReached);
        life.set_lifetime(&lifetime(Limits::NONE, packets(10)));
        assert!(life.expired());
        life.set_lifetime(&Lifetime::NONE);
        assert!(life.expired(), "an expired SA stays expired");
    }
}
