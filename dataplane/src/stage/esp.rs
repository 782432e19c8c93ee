//! ESP tunnel mode (RFC 4303) with AES-GCM (RFC 4106), in place.
//!
//! Outbound, the frame holds the inner IP packet; the stage prepends the
//! outer IPv4 header, the ESP header and the IV into the headroom, appends
//! padding, the trailer and the ICV into the tailroom, and encrypts the
//! payload where it lies. Inbound is the mirror image plus the anti-replay
//! check. No payload byte is ever copied.

use crate::drop_reason::DropReason;
use crate::frame::{Frame, Verdict};
use crate::packet::{esp, ipv4};
use crate::sa::{aad, SaIn, SaOut, SeqBlock};
use crate::tables::InboundSa;
use crate::tables::Tables;

/// Outer IPv4 + ESP header + IV.
pub const ENCAP_HEAD: usize = ipv4::MIN_HEADER_LEN + esp::HEADER_LEN + esp::IV_LEN;
/// Outer TTL of tunnel packets.
pub const OUTER_TTL: u8 = 64;
/// ESP next-header value of a dummy packet (RFC 4303 §2.6), dropped silently.
const NEXT_HEADER_NONE: u8 = 59;

/// Sequence numbers for the frames a batch encrypts: reserved per run of
/// frames on one SA with a single atomic add, sized to the frames still to
/// encrypt. Numbers left over when a frame fails or the SA changes are
/// skipped, which receivers accept (the sequence only has to grow).
#[derive(Debug)]
pub struct SeqCache {
    sa: u32,
    block: SeqBlock,
    pending: u64,
}

impl SeqCache {
    /// A cache for a batch with `pending` frames to encrypt.
    pub fn new(pending: u64) -> Self {
        SeqCache {
            sa: u32::MAX,
            block: SeqBlock::default(),
            pending,
        }
    }

    #[inline]
    fn next(&mut self, idx: u32, sa: &SaOut) -> Option<u64> {
        if self.sa != idx || self.block.is_empty() {
            self.block = sa.reserve_seq(self.pending);
            self.sa = idx;
        }
        self.block.take()
    }
}

/// Encrypts a frame with verdict `Encrypt(fec)` (the inner IP packet) into
/// an outer IPv4 + ESP packet; it becomes `Push(fec)`. Its sequence number
/// comes from `seqs`.
#[inline]
pub fn encrypt<F: Frame>(f: &mut F, t: &Tables, fec: u32, seqs: &mut SeqCache) -> Verdict {
    let v = match encrypt_one(f, t, fec, seqs) {
        Ok(()) => Verdict::Push(fec),
        Err(r) => Verdict::Drop(r),
    };
    seqs.pending = seqs.pending.saturating_sub(1);
    v
}

#[inline]
fn encrypt_one<F: Frame>(
    f: &mut F,
    t: &Tables,
    fec: u32,
    seqs: &mut SeqCache,
) -> Result<(), DropReason> {
    let fec_entry = t.fecs.get(fec as usize).ok_or(DropReason::NoRoute)?;
    let sa = t
        .sa_out
        .get(fec_entry.sa as usize)
        .ok_or(DropReason::NoRoute)?;
    let inner_len = f.len();
    let (next_header, tos) = match f.data().first().map(|b| b >> 4) {
        Some(4) => (ipv4::protocol::IPV4, f.data().get(1).copied().unwrap_or(0)),
        Some(6) => {
            let d = f.data();
            let tc = d.get(..2).map(|b| (b[0] << 4) | (b[1] >> 4)).unwrap_or(0);
            (ipv4::protocol::IPV6, tc)
        }
        _ => return Err(DropReason::Malformed),
    };
    let pad = esp::pad_len(inner_len);
    let body_len = inner_len + pad + esp::TRAILER_LEN;
    let tail = pad + esp::TRAILER_LEN + esp::ICV_LEN;
    let esp_len = esp::HEADER_LEN + esp::IV_LEN + body_len + esp::ICV_LEN;
    if ipv4::MIN_HEADER_LEN + esp_len > usize::from(u16::MAX) {
        return Err(DropReason::NoRoom);
    }
    if f.headroom() < ENCAP_HEAD || f.tailroom() < tail {
        return Err(DropReason::NoRoom);
    }
    let seq = seqs
        .next(fec_entry.sa, sa)
        .ok_or(DropReason::SeqExhausted)?;
    if !f.append(tail) || !f.prepend(ENCAP_HEAD) {
        return Err(DropReason::NoRoom);
    }
    let d = f.data_mut();
    let (hdr, rest) = d.split_at_mut(ENCAP_HEAD);
    // DSCP/ECN of the inner packet is copied to the outer header (RFC 4301 §5.1.2.1).
    ipv4::write_header(
        hdr,
        sa.tunnel_src,
        sa.tunnel_dst,
        ipv4::protocol::ESP,
        esp_len,
        OUTER_TTL,
        seq as u16,
        tos,
    )
    .map_err(|_| DropReason::NoRoom)?;
    let esp_hdr = &mut hdr[ipv4::MIN_HEADER_LEN..];
    esp::write_header(esp_hdr, sa.spi, seq as u32).map_err(|_| DropReason::NoRoom)?;
    let iv = seq.to_be_bytes();
    esp_hdr[esp::HEADER_LEN..esp::HEADER_LEN + esp::IV_LEN].copy_from_slice(&iv);

    let (body, icv) = rest.split_at_mut(body_len);
    for (i, b) in body[inner_len..inner_len + pad].iter_mut().enumerate() {
        *b = (i + 1) as u8; // RFC 4303 §2.4 default padding 1, 2, 3, ...
    }
    body[inner_len + pad] = pad as u8;
    body[inner_len + pad + 1] = next_header;
    let (a, n) = aad(sa.spi, seq, sa.esn);
    let tag = sa
        .gcm
        .seal(iv, &a[..n], body)
        .ok_or(DropReason::CryptoFailed)?;
    icv[..esp::ICV_LEN].copy_from_slice(&tag);
    Ok(())
}

/// The inbound SA of the previous frame: a batch usually carries one
/// tunnel, so the SPI table is searched once per SPI change, not per frame.
#[derive(Default)]
pub struct InboundCache<'t> {
    last: Option<(u32, &'t InboundSa)>,
}

impl<'t> InboundCache<'t> {
    #[inline]
    fn get(&mut self, t: &'t Tables, spi: u32) -> Option<&'t InboundSa> {
        match self.last {
            Some((s, sa)) if s == spi => Some(sa),
            _ => {
                let sa: &'t InboundSa = t.sa_in.get(&spi)?;
                self.last = Some((spi, sa));
                Some(sa)
            }
        }
    }
}

/// Verifies and decrypts a frame with verdict `Decrypt` (it starts at the
/// outer IPv4 header); it becomes `Deliver` holding the inner packet.
#[inline]
pub fn decrypt<'t, F: Frame>(f: &mut F, t: &'t Tables, sas: &mut InboundCache<'t>) -> Verdict {
    match decrypt_one(f, t, sas) {
        Ok(()) => Verdict::Deliver,
        Err(r) => Verdict::Drop(r),
    }
}

#[inline]
fn decrypt_one<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    sas: &mut InboundCache<'t>,
) -> Result<(), DropReason> {
    let d = f.data_mut();
    let (ihl, total, outer_src, outer_dst) = {
        let ip = ipv4::Ipv4Packet::new_checked(&*d).map_err(|_| DropReason::Malformed)?;
        if !ip.verify_checksum() {
            return Err(DropReason::BadChecksum);
        }
        if ip.protocol() != ipv4::protocol::ESP {
            return Err(DropReason::Unsupported);
        }
        if ip.more_frags() || ip.frag_offset() != 0 {
            // Tunnel packets are never fragmented on this backbone.
            return Err(DropReason::Unsupported);
        }
        (
            ip.header_len(),
            usize::from(ip.total_len()),
            ip.src_addr(),
            ip.dst_addr(),
        )
    };
    let pkt = &mut d[ihl..total];
    let (spi, seq_lo, iv) = {
        let e = esp::EspPacket::new_checked(&*pkt).map_err(|_| DropReason::Malformed)?;
        (e.spi(), e.seq(), e.iv())
    };
    let inbound = sas.get(t, spi).ok_or(DropReason::UnknownSpi)?;
    let sa: &SaIn = &inbound.sa;
    // A tunnel-mode SA is bound to its endpoints (RFC 4301 §4.1): the same
    // SPI arriving between other addresses belongs to no SA of ours.
    if outer_dst != sa.tunnel_dst || outer_src != sa.tunnel_src {
        return Err(DropReason::UnknownSpi);
    }
    let seq = if sa.esn {
        sa.window.infer_esn(seq_lo)
    } else {
        u64::from(seq_lo)
    };
    if !sa.window.check(seq) {
        return Err(DropReason::Replay);
    }
    let head = esp::HEADER_LEN + esp::IV_LEN;
    if pkt.len() < head + esp::TRAILER_LEN + esp::ICV_LEN {
        return Err(DropReason::Malformed);
    }
    let body_end = pkt.len() - esp::ICV_LEN;
    let (body, icv) = pkt[head..].split_at_mut(body_end - head);
    let mut tag = [0u8; esp::ICV_LEN];
    tag.copy_from_slice(icv);
    let (a, n) = aad(spi, seq, sa.esn);
    if !sa.gcm.open(iv, &a[..n], body, &tag) {
        return Err(DropReason::AuthFailed);
    }
    if !sa.window.accept(seq) {
        return Err(DropReason::Replay);
    }
    // RFC 4303 §2.4: the padding must be the default 1, 2, 3, ...
    let trailer = esp::read_trailer(body).map_err(|_| DropReason::Malformed)?;
    // The next header names the inner packet's version (RFC 4303 §2.6);
    // a packet that is not what it claims is not delivered.
    let version = body.first().map(|b| b >> 4);
    match (trailer.next_header, version) {
        (ipv4::protocol::IPV4, Some(4)) | (ipv4::protocol::IPV6, Some(6)) => {}
        (ipv4::protocol::IPV4 | ipv4::protocol::IPV6, _) => return Err(DropReason::Malformed),
        (NEXT_HEADER_NONE, _) => return Err(DropReason::Unsupported),
        _ => return Err(DropReason::Unsupported),
    }
    let inner_len = trailer.payload_len;
    if inner_len == 0 {
        return Err(DropReason::Malformed);
    }
    // Inbound policy (RFC 4301 §5.2): the inner source must be one of the
    // peer's prefixes. A packet too short to hold its source is left to
    // the delivery checks, which drop it as malformed.
    let inner = &body[..inner_len];
    let admitted = match version {
        Some(4) => inner
            .get(12..16)
            .and_then(|a| <[u8; 4]>::try_from(a).ok())
            .is_none_or(|a| inbound.admits_v4(a)),
        _ => inner
            .get(8..24)
            .and_then(|a| <[u8; 16]>::try_from(a).ok())
            .is_none_or(|a| inbound.admits_v6(a)),
    };
    if !admitted {
        return Err(DropReason::PolicyMismatch);
    }
    if !f.adj(ihl + head) {
        return Err(DropReason::Malformed);
    }
    if !f.trim(f.len() - inner_len) {
        return Err(DropReason::Malformed);
    }
    Ok(())
}
