//! Longest-prefix match: a multibit trie with 8-bit strides and controlled
//! prefix expansion (as in DPDK's rte_lpm and DIR-24-8, but compact).
//!
//! A lookup walks at most 4 nodes for IPv4 and 16 for IPv6, one indexed load
//! per byte of the address, with no branches on prefix length. Tables are
//! built once and then read-only (a new snapshot replaces the whole table).

/// One slot of a trie node: the best value covering this byte, the prefix
/// length that set it, and the child node for longer prefixes.
#[derive(Clone, Copy, Default)]
struct Slot {
    /// value index + 1; 0 = none.
    value: u32,
    /// Prefix length that wrote `value` (longer wins on overlap).
    depth: u8,
    /// child node index + 1; 0 = none.
    child: u32,
}

/// A longest-prefix-match table from `BITS`-bit keys to `u32` values.
#[derive(Clone)]
pub struct Lpm<const BITS: u32> {
    nodes: Vec<[Slot; 256]>,
    default: Option<u32>,
    len: usize,
}

/// IPv4 LPM table.
pub type Lpm4 = Lpm<32>;
/// IPv6 LPM table.
pub type Lpm6 = Lpm<128>;

impl<const BITS: u32> Default for Lpm<BITS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const BITS: u32> Lpm<BITS> {
    /// An empty table.
    pub fn new() -> Self {
        Lpm {
            nodes: vec![[Slot::default(); 256]],
            default: None,
            len: 0,
        }
    }

    /// Number of prefixes inserted.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no prefix was inserted.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn byte(key: u128, level: u32) -> usize {
        ((key >> (BITS - 8 * (level + 1))) & 0xff) as usize
    }

    /// Inserts `key/len` -> `value` (host bits of `key` are ignored). A later
    /// insert of the same prefix replaces the value. `len > BITS` is clamped.
    pub fn insert(&mut self, key: u128, len: u8, value: u32) {
        let len = u32::from(len).min(BITS);
        self.len += 1;
        if len == 0 {
            self.default = Some(value);
            return;
        }
        let last = (len - 1) / 8;
        let mut node = 0usize;
        for level in 0..last {
            let b = Self::byte(key, level);
            let child = self.nodes[node][b].child;
            node = if child == 0 {
                self.nodes.push([Slot::default(); 256]);
                let idx = self.nodes.len() - 1;
                self.nodes[node][b].child = idx as u32 + 1;
                idx
            } else {
                child as usize - 1
            };
        }
        let b = Self::byte(key, last);
        let used = len - 8 * last; // 1..=8 bits of this byte belong to the prefix
        let span = 1usize << (8 - used);
        let first = b & !(span - 1);
        for slot in &mut self.nodes[node][first..first + span] {
            if slot.value == 0 || u32::from(slot.depth) <= len {
                slot.value = value + 1;
                slot.depth = len as u8;
            }
        }
    }

    /// The value of the longest prefix covering `key`, if any.
    #[inline]
    pub fn lookup(&self, key: u128) -> Option<u32> {
        let mut best = self.default;
        let mut node = 0usize;
        for level in 0..BITS / 8 {
            let slot = self.nodes[node][Self::byte(key, level)];
            if slot.value != 0 {
                best = Some(slot.value - 1);
            }
            if slot.child == 0 {
                break;
            }
            node = slot.child as usize - 1;
        }
        best
    }
}

impl Lpm<32> {
    /// Inserts an IPv4 prefix.
    pub fn insert_v4(&mut self, addr: std::net::Ipv4Addr, len: u8, value: u32) {
        self.insert(u128::from(u32::from(addr)), len, value)
    }
    /// Looks up an IPv4 address.
    #[inline]
    pub fn lookup_v4(&self, addr: [u8; 4]) -> Option<u32> {
        self.lookup(u128::from(u32::from_be_bytes(addr)))
    }
}

impl Lpm<128> {
    /// Inserts an IPv6 prefix.
    pub fn insert_v6(&mut self, addr: std::net::Ipv6Addr, len: u8, value: u32) {
        self.insert(u128::from(addr), len, value)
    }
    /// Looks up an IPv6 address.
    #[inline]
    pub fn lookup_v6(&self, addr: [u8; 16]) -> Option<u32> {
        self.lookup(u128::from_be_bytes(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    #[test]
    fn longest_prefix_wins_in_any_insert_order() {
        let mut a = Lpm4::new();
        a.insert_v4(Ipv4Addr::new(10, 0, 0, 0), 8, 1);
        a.insert_v4(Ipv4Addr::new(10, 2, 0, 0), 16, 2);
        a.insert_v4(Ipv4Addr::new(10, 2, 3, 0), 24, 3);
        a.insert_v4(Ipv4Addr::new(10, 2, 3, 4), 32, 4);
        a.insert_v4(Ipv4Addr::new(10, 2, 3, 128), 25, 5);
        let mut b = Lpm4::new();
        b.insert_v4(Ipv4Addr::new(10, 2, 3, 128), 25, 5);
        b.insert_v4(Ipv4Addr::new(10, 2, 3, 4), 32, 4);
        b.insert_v4(Ipv4Addr::new(10, 2, 3, 0), 24, 3);
        b.insert_v4(Ipv4Addr::new(10, 2, 0, 0), 16, 2);
        b.insert_v4(Ipv4Addr::new(10, 0, 0, 0), 8, 1);
        for t in [&a, &b] {
            assert_eq!(t.lookup_v4([10, 9, 9, 9]), Some(1));
            assert_eq!(t.lookup_v4([10, 2, 9, 9]), Some(2));
            assert_eq!(t.lookup_v4([10, 2, 3, 5]), Some(3));
            assert_eq!(t.lookup_v4([10, 2, 3, 4]), Some(4));
            assert_eq!(t.lookup_v4([10, 2, 3, 200]), Some(5));
            assert_eq!(t.lookup_v4([11, 0, 0, 0]), None);
        }
    }

    #[test]
    fn default_route_and_v6() {
        let mut t = Lpm6::new();
        t.insert_v6("::".parse().unwrap(), 0, 7);
        t.insert_v6("2001:db8::".parse().unwrap(), 32, 8);
        t.insert_v6("2001:db8:0:1::".parse().unwrap(), 64, 9);
        let q = |s: &str| t.lookup_v6(s.parse::<std::net::Ipv6Addr>().unwrap().octets());
        assert_eq!(q("2001:db8:0:1::5"), Some(9));
        assert_eq!(q("2001:db8:0:2::5"), Some(8));
        assert_eq!(q("fe80::1"), Some(7));
    }

    fn naive(prefixes: &[(u32, u8, u32)], addr: u32) -> Option<u32> {
        let mut best: Option<(u8, u32)> = None;
        for &(p, l, v) in prefixes {
            let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            if addr & mask == p & mask && best.is_none_or(|(bl, _)| l >= bl) {
                best = Some((l, v));
            }
        }
        best.map(|(_, v)| v)
    }

    proptest! {
        #[test]
        fn matches_naive_scan(prefixes in proptest::collection::vec((any::<u32>(), 0u8..=32), 1..40),
                              probes in proptest::collection::vec(any::<u32>(), 1..50)) {
            // Distinct prefixes only (a re-insert replaces, as in the naive scan's "last wins").
            let mut seen = std::collections::HashSet::new();
            let mut list = Vec::new();
            for (i, (p, l)) in prefixes.into_iter().enumerate() {
                let mask = if l == 0 { 0 } else { u32::MAX << (32 - l) };
                if seen.insert((p & mask, l)) { list.push((p & mask, l, i as u32)); }
            }
            let mut t = Lpm4::new();
            for &(p, l, v) in &list { t.insert(u128::from(p), l, v); }
            for a in probes.into_iter().chain(list.iter().map(|x| x.0)) {
                prop_assert_eq!(t.lookup(u128::from(a)), naive(&list, a));
            }
        }
    }
}
