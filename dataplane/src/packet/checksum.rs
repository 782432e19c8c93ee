//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Sums here are one's-complement sums. A "sum" is not complemented; a
//! "checksum" is the complement of a folded sum, as it goes on the wire.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide accumulator of big-endian words into a 16-bit
/// one's-complement sum (end-around carry).
#[inline]
fn fold64(sum: u64) -> u16 {
    // End-around carries without a loop: 64 -> 33 bits -> 32 bits (the
    // second sum is at most 2^32 - 1), then the 32-bit fold.
    let s = (sum & 0xffff_ffff) + (sum >> 32);
    let s = (s & 0xffff_ffff) + (s >> 32);
    fold(s as u32)
}

/// Folds a 32-bit accumulator (e.g. a pseudo-header sum) into a 16-bit
/// one's-complement sum.
#[inline]
pub fn fold(sum: u32) -> u16 {
    // Two end-around carries are enough for 32 bits: the first leaves at
    // most 0x1_fffe, the second at most 0xffff.
    let s = (sum & 0xffff) + (sum >> 16);
    ((s & 0xffff) + (s >> 16)) as u16
}

/// One's-complement sum of `data` read as big-endian 16-bit words, an odd
/// trailing byte padded with zero. Not complemented.
#[inline]
pub fn ones_sum(data: &[u8]) -> u16 {
    // Summing 32-bit words and folding at the end is congruent modulo 0xffff
    // with summing 16-bit words, and gives the same representative.
    let mut acc: u64 = 0;
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc += u64::from(u32::from_be_bytes(tail));
    fold64(acc)
}

/// The Internet checksum of `data`: the one's complement of its
/// one's-complement sum. Over a header that already holds a correct
/// checksum the result is 0.
#[inline]
pub fn internet_checksum(data: &[u8]) -> u16 {
    !ones_sum(data)
}

/// True when the 20 bytes `h` (an option-less IPv4 header) carry a correct
/// Internet checksum: `internet_checksum(h) == 0`, summed as five 32-bit
/// words without a loop.
#[inline]
pub fn sum20_is_valid(h: &[u8; 20]) -> bool {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    fold64(w(0) + w(4) + w(8) + w(12) + w(16)) == 0xffff
}

/// Combines partial one's-complement sums (e.g. pseudo-header and payload)
/// into one. Not complemented: the checksum is `!combine(..)`.
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold64(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Unfolded sum of the IPv4 pseudo-header (RFC 768 / RFC 793): source,
/// destination, zero + protocol, and the transport length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    u32::from(u16::from_be_bytes([s[0], s[1]]))
        + u32::from(u16::from_be_bytes([s[2], s[3]]))
        + u32::from(u16::from_be_bytes([d[0], d[1]]))
        + u32::from(u16::from_be_bytes([d[2], d[3]]))
        + u32::from(proto)
        + u32::from(len)
}

/// Unfolded sum of the IPv6 pseudo-header (RFC 8200 §8.1): source,
/// destination, 32-bit upper-layer length and next header.
#[inline]
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let seg = |a: Ipv6Addr| a.segments().iter().map(|&w| u32::from(w)).sum::<u32>();
    seg(src) + seg(dst) + (len >> 16) + (len & 0xffff) + u32::from(next_header)
}

/// Updates checksum `old_csum` after one 16-bit word of the covered data
/// changed from `old_word` to `new_word`: RFC 1624 eqn. 3,
/// `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn incremental_update(old_csum: u16, old_word: u16, new_word: u16) -> u16 {
    let sum = u32::from(!old_csum) + u32::from(!old_word) + u32::from(new_word);
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The 20-byte shortcut agrees with the general checksum, on
        /// headers with and without a correct checksum.
        #[test]
        fn sum20_agrees_with_the_general_checksum(h in proptest::array::uniform20(any::<u8>()), fix in any::<bool>()) {
            let mut h = h;
            if fix {
                h[10] = 0;
                h[11] = 0;
                let c = internet_checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(sum20_is_valid(&h), internet_checksum(&h) == 0);
        }
    }

    /// The reference: 16-bit words, RFC 1071 as written.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for c in data.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_sum(&data), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn empty_and_odd() {
        assert_eq!(internet_checksum(&[]), 0xffff);
        assert_eq!(ones_sum(&[0xab]), 0xab00);
        assert_eq!(ones_sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    #[test]
    fn combine_carries() {
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
        assert_eq!(combine(&[]), 0);
    }

    #[test]
    fn pseudo_header_v4_known() {
        let s = pseudo_header_v4(
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 2),
            17,
            12,
        );
        assert_eq!(s, 0xc0a8 + 0x0001 + 0xc0a8 + 0x0002 + 17 + 12);
    }

    #[test]
    fn pseudo_header_v6_matches_bytes() {
        let src: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: Ipv6Addr = "2001:db8::ffff:2".parse().unwrap();
        let mut ph = Vec::new();
        ph.extend_from_slice(&src.octets());
        ph.extend_from_slice(&dst.octets());
        ph.extend_from_slice(&0x0001_0203u32.to_be_bytes());
        ph.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(
            fold(pseudo_header_v6(src, dst, 17, 0x0001_0203)),
            ones_sum(&ph)
        );
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(internet_checksum(&data), reference(&data));
        }

        #[test]
        fn split_sums_combine(data in proptest::collection::vec(any::<u8>(), 0..300), cut in 0usize..150) {
            // Partial sums combine when the split falls on a 16-bit boundary.
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!(combine(&[ones_sum(a), ones_sum(b)]), ones_sum(&data));
        }

        #[test]
        fn incremental_equals_recompute(
            mut words in proptest::collection::vec(any::<u16>(), 2..40),
            idx in any::<prop::sample::Index>(),
            new_word in any::<u16>(),
        ) {
            // A non-zero word keeps the sum out of the -0 corner (as in every
            // real header, which has a non-zero version field).
            words[0] |= 1;
            let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            let i = 1 + idx.index(words.len() - 1);
            let old_csum = internet_checksum(&bytes(&words));
            let old_word = words[i];
            words[i] = new_word;
            prop_assert_eq!(
                incremental_update(old_csum, old_word, new_word),
                internet_checksum(&bytes(&words))
            );
        }
    }
}
