//! The headers an ingress gateway writes in front of every packet of one
//! FEC: the Ethernet header to the next hop and the FEC's label (RFC
//! 3032), the outer IPv4 header, the UDP header of ESP in UDP (RFC 3948)
//! when the SA has one, the ESP header and the IV (RFC 4303, RFC 4106).
//!
//! All but five fields are the same for every packet, so they are laid
//! out once when the tables are built, with the one's-complement sum of
//! the IPv4 header's fixed words; per packet the template is copied and
//! the DSCP/ECN, lengths, identification, checksum, sequence number and IV
//! are patched in (as DPDK's librte_ipsec and VPP's ESP nodes do). A test
//! holds every template write to the bytes the plain header writers give.

use crate::config::Mac;
use crate::packet::ethernet::{self, ethertype};
use crate::packet::mpls::{MplsEntry, ENTRY_LEN};
use crate::packet::{checksum, esp, ipv4, udp};
use crate::sa::SaOut;

/// TTL of a pushed label.
pub const PUSH_TTL: u8 = 64;
/// TTL of the outer IPv4 header.
pub const OUTER_TTL: u8 = 64;
/// The UDP port of ESP in UDP, both ways (RFC 3948 §2.1).
pub const NAT_T_PORT: u16 = 4500;

/// Longest template: Ethernet, one label, IPv4, UDP, ESP header and IV.
const MAX_LEN: usize = ethernet::HEADER_LEN
    + ENTRY_LEN
    + ipv4::MIN_HEADER_LEN
    + udp::HEADER_LEN
    + esp::HEADER_LEN
    + esp::IV_LEN;

/// The four layouts: label or none, UDP or none.
const LEN_LABEL: usize = MAX_LEN - udp::HEADER_LEN;
const LEN_LABEL_UDP: usize = MAX_LEN;
const LEN_PLAIN: usize = LEN_LABEL - ENTRY_LEN;
const LEN_PLAIN_UDP: usize = MAX_LEN - ENTRY_LEN;

/// The headers in front of every packet of one FEC, with the fixed fields
/// filled in.
#[derive(Clone, Copy, Debug)]
pub struct EncapTemplate {
    bytes: [u8; MAX_LEN],
    /// Bytes of headers, IV included.
    len: u8,
    /// Where the IPv4 header starts (after the Ethernet header and label).
    ip: u8,
    udp: bool,
    /// Unfolded one's-complement sum of the IPv4 header's fixed words
    /// (DSCP/ECN, total length, identification and checksum at zero).
    sum: u32,
}

impl EncapTemplate {
    /// The template of a FEC that pushes `label` (None: a partner port,
    /// plain ESP in an IPv4 frame) toward `dst` from `src` under `sa`.
    pub fn new(label: Option<u32>, dst: Mac, src: Mac, sa: &SaOut) -> Self {
        let mut bytes = [0u8; MAX_LEN];
        let et = if label.is_some() {
            ethertype::MPLS
        } else {
            ethertype::IPV4
        };
        let mut at = 0;
        // The writers cannot fail here: every slice is long enough.
        let _ = ethernet::write_header(&mut bytes, dst, src, et);
        at += ethernet::HEADER_LEN;
        if let Some(l) = label {
            let _ = MplsEntry::new(l, 0, true, PUSH_TTL).write(&mut bytes[at..]);
            at += ENTRY_LEN;
        }
        let ip = at;
        let protocol = if sa.udp_encap {
            ipv4::protocol::UDP
        } else {
            ipv4::protocol::ESP
        };
        let _ = ipv4::write_header(
            &mut bytes[ip..],
            sa.tunnel_src,
            sa.tunnel_dst,
            protocol,
            0,
            OUTER_TTL,
            0,
            0,
        );
        // Lengths and checksum are per packet: zero them in the template
        // and keep the sum of what stays.
        bytes[ip + 2..ip + 4].fill(0);
        bytes[ip + 10..ip + 12].fill(0);
        let sum = checksum::pseudo_header_v4(sa.tunnel_src, sa.tunnel_dst, 0, 0)
            + u32::from(u16::from_be_bytes([0x45, 0]))
            + u32::from(u16::from_be_bytes([OUTER_TTL, protocol]));
        at += ipv4::MIN_HEADER_LEN;
        if sa.udp_encap {
            let _ = udp::write_header(&mut bytes[at..], NAT_T_PORT, NAT_T_PORT, 0);
            bytes[at + 4..at + 6].fill(0);
            at += udp::HEADER_LEN;
        }
        let _ = esp::write_header(&mut bytes[at..], sa.spi, 0);
        at += esp::HEADER_LEN + esp::IV_LEN;
        EncapTemplate {
            bytes,
            len: at as u8,
            ip: ip as u8,
            udp: sa.udp_encap,
            sum,
        }
    }

    /// Bytes of headers the template writes, IV included.
    #[inline(always)]
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never: a template holds at least an Ethernet, IPv4 and ESP header.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes after the IPv4 header to the end of the packet, for an ESP
    /// packet (header to ICV) of `esp_len` bytes.
    #[inline(always)]
    pub fn ip_payload_len(&self, esp_len: usize) -> usize {
        esp_len + if self.udp { udp::HEADER_LEN } else { 0 }
    }

    /// Writes the headers of one packet into `h` (at least [`len`] bytes):
    /// the template, then the outer DSCP/ECN `tos` (copied from the inner
    /// packet, RFC 4301 §5.1.2.1), the lengths for an ESP packet of
    /// `esp_len` bytes, the identification (the low half of `seq`), the
    /// checksum, the sequence number and the IV (`seq`, RFC 4106 §3.1).
    /// False when `h` is too short or the packet too long for IPv4.
    ///
    /// [`len`]: EncapTemplate::len
    #[inline(always)]
    pub fn write(&self, h: &mut [u8], tos: u8, esp_len: usize, seq: u64) -> bool {
        let udp_len = esp_len + udp::HEADER_LEN;
        let Ok(total) = u16::try_from(ipv4::MIN_HEADER_LEN + self.ip_payload_len(esp_len)) else {
            return false;
        };
        // A copy of a fixed length is a few vector moves; a variable one
        // would be a call.
        let copied = match usize::from(self.len) {
            LEN_LABEL => copy_prefix::<LEN_LABEL>(h, &self.bytes),
            LEN_PLAIN => copy_prefix::<LEN_PLAIN>(h, &self.bytes),
            LEN_LABEL_UDP => copy_prefix::<LEN_LABEL_UDP>(h, &self.bytes),
            LEN_PLAIN_UDP => copy_prefix::<LEN_PLAIN_UDP>(h, &self.bytes),
            _ => false,
        };
        if !copied {
            return false;
        }
        let ip = usize::from(self.ip);
        let id = seq as u16;
        let sum = self.sum + u32::from(tos) + u32::from(total) + u32::from(id);
        h[ip + 1] = tos;
        h[ip + 2..ip + 4].copy_from_slice(&total.to_be_bytes());
        h[ip + 4..ip + 6].copy_from_slice(&id.to_be_bytes());
        h[ip + 10..ip + 12].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
        let mut at = ip + ipv4::MIN_HEADER_LEN;
        if self.udp {
            // The UDP checksum stays zero (RFC 3948 §2.1).
            h[at + 4..at + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            at += udp::HEADER_LEN;
        }
        h[at + 4..at + 8].copy_from_slice(&(seq as u32).to_be_bytes());
        h[at + 8..at + 16].copy_from_slice(&seq.to_be_bytes());
        true
    }
}

/// Copies the first `N` bytes of `from` to the start of `to`.
#[inline(always)]
fn copy_prefix<const N: usize>(to: &mut [u8], from: &[u8; MAX_LEN]) -> bool {
    match (to.first_chunk_mut::<N>(), from.first_chunk::<N>()) {
        (Some(t), Some(f)) => {
            *t = *f;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AeadAlg, SaConfig, SaDir};
    use crate::sa::Sa;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn sa_out(spi: u32, src: Ipv4Addr, dst: Ipv4Addr, esn: bool, udp_encap: bool) -> SaOut {
        let c = SaConfig {
            spi,
            dir: SaDir::Out,
            aead: AeadAlg::Aes128Gcm,
            key: zeroize::Zeroizing::new(vec![7; 20]),
            tunnel_src: src,
            tunnel_dst: dst,
            esn,
            udp_encap,
            lifetime: crate::sa::Lifetime::NONE,
            peer: None,
            negotiated: false,
        };
        match Sa::from_config(&c) {
            Ok(Sa::Out(sa)) => sa,
            _ => panic!("an outbound SA"),
        }
    }

    /// The headers as the plain writers lay them out, one after another.
    fn plain(
        label: Option<u32>,
        dst: Mac,
        src: Mac,
        sa: &SaOut,
        tos: u8,
        esp_len: usize,
        seq: u64,
    ) -> Vec<u8> {
        let mut v = vec![0u8; MAX_LEN];
        let mut at = 0;
        match label {
            Some(l) => {
                ethernet::write_header(&mut v, dst, src, ethertype::MPLS).unwrap();
                MplsEntry::new(l, 0, true, PUSH_TTL)
                    .write(&mut v[ethernet::HEADER_LEN..])
                    .unwrap();
                at += ethernet::HEADER_LEN + ENTRY_LEN;
            }
            None => {
                ethernet::write_header(&mut v, dst, src, ethertype::IPV4).unwrap();
                at += ethernet::HEADER_LEN;
            }
        }
        let udp_len = if sa.udp_encap { udp::HEADER_LEN } else { 0 };
        let proto = if sa.udp_encap {
            ipv4::protocol::UDP
        } else {
            ipv4::protocol::ESP
        };
        ipv4::write_header(
            &mut v[at..],
            sa.tunnel_src,
            sa.tunnel_dst,
            proto,
            udp_len + esp_len,
            OUTER_TTL,
            seq as u16,
            tos,
        )
        .unwrap();
        at += ipv4::MIN_HEADER_LEN;
        if sa.udp_encap {
            udp::write_header(&mut v[at..], NAT_T_PORT, NAT_T_PORT, esp_len).unwrap();
            at += udp::HEADER_LEN;
        }
        esp::write_header(&mut v[at..], sa.spi, seq as u32).unwrap();
        v[at + esp::HEADER_LEN..at + esp::HEADER_LEN + esp::IV_LEN]
            .copy_from_slice(&seq.to_be_bytes());
        v.truncate(at + esp::HEADER_LEN + esp::IV_LEN);
        v
    }

    proptest! {
        /// The template's headers are the plain writers' headers, byte for
        /// byte, for every layout and field value.
        #[test]
        fn template_writes_what_the_plain_writers_write(
            label in proptest::option::of(0u32..(1 << 20)),
            dst in any::<[u8; 6]>(), src in any::<[u8; 6]>(),
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(),
            spi in 256u32.., udp_encap in any::<bool>(), esn in any::<bool>(),
            tos in any::<u8>(), esp_len in 24usize..65_600, seq in any::<u64>(),
        ) {
            let sa = sa_out(spi, Ipv4Addr::from(a), Ipv4Addr::from(b), esn, udp_encap);
            let t = EncapTemplate::new(label, dst, src, &sa);
            let mut got = vec![0xa5u8; t.len() + 3];
            let fits = ipv4::MIN_HEADER_LEN + t.ip_payload_len(esp_len) <= 65_535;
            prop_assert_eq!(t.write(&mut got, tos, esp_len, seq), fits);
            if fits {
                let want = plain(label, dst, src, &sa, tos, esp_len, seq);
                prop_assert_eq!(&got[..t.len()], &want[..]);
                prop_assert_eq!(&got[t.len()..], &[0xa5; 3][..], "nothing past the headers");
            }
        }
    }

    #[test]
    fn too_short_a_buffer_is_refused() {
        let sa = sa_out(
            300,
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            true,
            false,
        );
        let t = EncapTemplate::new(Some(16), [2; 6], [4; 6], &sa);
        assert_eq!(t.len(), LEN_LABEL);
        let mut short = vec![0u8; t.len() - 1];
        assert!(!t.write(&mut short, 0, 64, 1));
    }
}
