//! Why a frame was dropped; every reason has its own counter.

/// Why a frame was dropped. Every variant is counted per worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// A header was truncated or inconsistent.
    Malformed,
    /// No FEC, LFIB entry or delivery prefix matched.
    NoRoute,
    /// MPLS or IP TTL reached zero.
    TtlExpired,
    /// ESP integrity check (GCM tag) failed.
    AuthFailed,
    /// ESP sequence number outside or already seen in the anti-replay window.
    Replay,
    /// No inbound SA has this SPI.
    UnknownSpi,
    /// The port's TX ring was full.
    TxFull,
    /// Not enough headroom/tailroom to encapsulate.
    NoRoom,
    /// An ethertype or protocol this node does not forward.
    Unsupported,
    /// The outbound SA's sequence number space is exhausted.
    SeqExhausted,
    /// The destination MAC is not the receiving port's (RFC 1812 §5.3.4:
    /// a router forwards only what is addressed to it at the link layer).
    NotForUs,
    /// The source MAC is a group (multicast or broadcast) or zero address.
    BadSourceMac,
    /// An IPv4 header checksum is wrong (RFC 1812 §5.2.2).
    BadChecksum,
    /// An IP source or destination a router never forwards (RFC 1812
    /// §5.3.7, RFC 4291 §2.5.6): loopback, unspecified, multicast,
    /// broadcast, link-local, reserved.
    Martian,
    /// Longer than the largest frame the configured `[io] mtu` admits, or
    /// received over several buffers (a chained mbuf).
    Oversize,
    /// A decrypted packet's source is outside what its SA carries (the
    /// inbound policy check of RFC 4301 §5.2).
    PolicyMismatch,
    /// An IP packet larger than `[io] mtu` at the tunnel's edge (RFC 1191:
    /// the sender should learn the smaller MTU).
    TooBig,
    /// Addressed to the node, over its control-plane policer's rate for
    /// the packet's protocol class (`[punt]`).
    PuntPoliced,
    /// Addressed to the node, but the worker's punt queue to the control
    /// thread was full.
    PuntFull,
    /// The AEAD refused to seal (an input it does not take): the frame is
    /// dropped rather than sent with its plaintext.
    CryptoFailed,
    /// The SA reached a hard lifetime limit (packets, bytes or seconds,
    /// RFC 4301 §4.4.2.1): it protects nothing more until replaced.
    SaExpired,
    /// The FEC's outbound SA is to be negotiated with its IKE peer and is
    /// not there yet (no IKE SA, or its Child SA is being made).
    SaPending,
}

impl DropReason {
    /// Number of reasons (size of a counter array).
    pub const COUNT: usize = 22;
    /// All reasons in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::NoRoute,
        DropReason::TtlExpired,
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::UnknownSpi,
        DropReason::TxFull,
        DropReason::NoRoom,
        DropReason::Unsupported,
        DropReason::SeqExhausted,
        DropReason::NotForUs,
        DropReason::BadSourceMac,
        DropReason::BadChecksum,
        DropReason::Martian,
        DropReason::Oversize,
        DropReason::PolicyMismatch,
        DropReason::TooBig,
        DropReason::PuntPoliced,
        DropReason::PuntFull,
        DropReason::CryptoFailed,
        DropReason::SaExpired,
        DropReason::SaPending,
    ];

    /// Stable snake_case name for reports and metrics.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::NoRoute => "no_route",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replay => "replay",
            DropReason::UnknownSpi => "unknown_spi",
            DropReason::TxFull => "tx_full",
            DropReason::NoRoom => "no_room",
            DropReason::Unsupported => "unsupported",
            DropReason::SeqExhausted => "seq_exhausted",
            DropReason::NotForUs => "not_for_us",
            DropReason::BadSourceMac => "bad_source_mac",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::Martian => "martian",
            DropReason::Oversize => "oversize",
            DropReason::PolicyMismatch => "policy_mismatch",
            DropReason::TooBig => "too_big",
            DropReason::PuntPoliced => "punt_policed",
            DropReason::PuntFull => "punt_full",
            DropReason::CryptoFailed => "crypto_failed",
            DropReason::SaExpired => "sa_expired",
            DropReason::SaPending => "sa_pending",
        }
    }

    /// Index into a counter array.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One counter per drop reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters(pub [u64; DropReason::COUNT]);

impl DropCounters {
    /// Counts one drop.
    #[inline]
    pub fn bump(&mut self, r: DropReason) {
        self.0[r.index()] += 1;
    }
    /// The count for one reason.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r.index()]
    }
    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
    /// Adds another worker's counters.
    pub fn add(&mut self, o: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a += b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn all_is_in_index_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
