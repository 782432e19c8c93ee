//! ESP tunnel mode (RFC 4303) with AES-GCM (RFC 4106), in place.
//!
//! Outbound, the frame holds the inner IP packet; the stage prepends the
//! outer IPv4 header, the ESP header and the IV into the headroom, appends
//! padding, the trailer and the ICV into the tailroom, and encrypts the
//! payload where it lies. Inbound is the mirror image plus the anti-replay
//! check. No payload byte is ever copied.

use crate::drop_reason::DropReason;
use crate::frame::{Frame, PortId, Verdict, BURST};
use crate::packet::{esp, ipv4};
use crate::sa::lifetime::RunCount;
use crate::sa::{aad, aead, SaIn, SaOut, SeqBlock};
use crate::tables::InboundSa;
use crate::tables::Tables;

/// The UDP port of ESP in UDP and of IKE beside it (RFC 3948 §2.1), and
/// the TTL of outer headers.
pub use crate::tables::encap::{NAT_T_PORT, OUTER_TTL};
/// ESP next-header value of a dummy packet (RFC 4303 §2.6), dropped silently.
const NEXT_HEADER_NONE: u8 = 59;

/// Sequence numbers for the frames a batch encrypts: reserved per run of
/// frames on one SA with a single atomic add, sized to the frames still to
/// encrypt. Numbers left over when a frame fails or the SA changes are
/// skipped, which receivers accept (the sequence only has to grow).
///
/// It also keeps the SA's lifetime: a run starts only on an SA that has
/// not expired, and what the run sealed is added to the SA's counts when
/// the run ends (the SA changes, or the cache is dropped with its batch).
#[derive(Debug)]
pub struct SeqCache<'t> {
    sa: u32,
    block: SeqBlock,
    pending: u64,
    run: RunCount<'t>,
}

impl<'t> SeqCache<'t> {
    /// A cache for a batch with `pending` frames to encrypt.
    pub fn new(pending: u64) -> Self {
        SeqCache {
            sa: u32::MAX,
            block: SeqBlock::default(),
            pending,
            run: RunCount::default(),
        }
    }

    #[inline]
    fn next(&mut self, idx: u32, sa: &'t SaOut) -> Result<u64, DropReason> {
        if self.sa != idx || self.block.is_empty() {
            self.run.flush();
            if sa.life.expired() {
                // No run: the next frame looks again, whatever its SA.
                self.sa = u32::MAX;
                return Err(sa.life.refusal());
            }
            self.block = sa.reserve_seq(self.pending);
            self.sa = idx;
            self.run.start(&sa.life);
        }
        self.block.take().ok_or(DropReason::SeqExhausted)
    }
}

/// A frame `encapsulate` has put in ESP form, waiting for `seal` to
/// encrypt it.
///
/// Its nonce and AAD are built here, and its padding and trailer written,
/// a whole pass before the AEAD reads them. Written just before the call,
/// they would still sit in the store buffer when the library's vector
/// loads want them, and such a load waits for the stores to retire: about
/// 20 ns per frame at 64 B on the project's machines, as much as the
/// encryption itself.
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingSeal {
    sa: u32,
    /// The port the frame leaves by, sealed.
    port: PortId,
    body_len: u32,
    aad_len: u8,
    /// Headers in front of the body (the FEC's `EncapTemplate`).
    head: u8,
    nonce: [u8; aead::NONCE_LEN],
    aad: [u8; 12],
}

/// Frames of a batch waiting for their second pass, by index in the
/// batch: `SealQueue` and `OpenQueue`.
pub struct BatchQueue<J> {
    jobs: [(u8, J); BURST],
    len: usize,
}

impl<J: Copy + Default> Default for BatchQueue<J> {
    fn default() -> Self {
        BatchQueue {
            jobs: [(0, J::default()); BURST],
            len: 0,
        }
    }
}

impl<J> BatchQueue<J> {
    /// Queues frame `index` of the batch; a full queue (more than a
    /// batch) refuses and hands the job back.
    #[inline]
    pub fn push(&mut self, index: usize, job: J) -> Result<(), J> {
        match (self.jobs.get_mut(self.len), u8::try_from(index)) {
            (Some(slot), Ok(i)) => {
                *slot = (i, job);
                self.len += 1;
                Ok(())
            }
            _ => Err(job),
        }
    }

    /// The queued frames in the order they were queued.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = (usize, &J)> {
        self.jobs[..self.len]
            .iter()
            .map(|(i, j)| (usize::from(*i), j))
    }
}

/// The frames of a batch waiting to be sealed.
pub type SealQueue = BatchQueue<PendingSeal>;

/// Encrypts a frame with verdict `Encrypt(fec)` (the inner IP packet) into
/// an outer IPv4 + ESP packet behind the FEC's Ethernet header and label;
/// it becomes `Tx(port)`. Its sequence number comes from `seqs`. A batch does this in two passes (`encapsulate` over
/// every frame, then `seal`), which is what the stage chain runs.
#[inline]
pub fn encrypt<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    fec: u32,
    seqs: &mut SeqCache<'t>,
) -> Verdict {
    match encapsulate(f, t, fec, seqs) {
        Ok(job) => seal(f, t, &job),
        Err(r) => Verdict::Drop(r),
    }
}

/// The first pass of `encrypt`: the FEC's Ethernet header and label, outer
/// IPv4 and ESP headers, IV, padding and trailer written around the inner
/// packet, its sequence number taken; the payload is still plaintext and
/// the ICV unwritten.
#[inline]
pub fn encapsulate<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    fec: u32,
    seqs: &mut SeqCache<'t>,
) -> Result<PendingSeal, DropReason> {
    let r = encapsulate_one(f, t, fec, seqs);
    seqs.pending = seqs.pending.saturating_sub(1);
    if let Ok(job) = &r {
        // The SA's lifetime counts what it encrypts.
        seqs.run.add(job.body_len as usize);
    }
    r
}

/// The second pass of `encrypt`: encrypts the payload `encapsulate` left
/// in place and writes the ICV. `Tx(port)`, or a drop if the AEAD
/// refused (the frame may still hold plaintext).
#[inline]
pub fn seal<F: Frame>(f: &mut F, t: &Tables, job: &PendingSeal) -> Verdict {
    let Some(sa) = t.sa_out.get(job.sa as usize) else {
        return Verdict::Drop(DropReason::NoRoute);
    };
    let body_len = job.body_len as usize;
    let head = usize::from(job.head);
    let Some(rest) = f.data_mut().get_mut(head..head + body_len + esp::ICV_LEN) else {
        return Verdict::Drop(DropReason::Malformed);
    };
    let (body, icv) = rest.split_at_mut(body_len);
    match sa
        .gcm
        .seal_with(&job.nonce, &job.aad[..usize::from(job.aad_len)], body)
    {
        Some(tag) => {
            icv.copy_from_slice(&tag);
            Verdict::Tx(job.port)
        }
        None => Verdict::Drop(DropReason::CryptoFailed),
    }
}

#[inline]
fn encapsulate_one<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    fec: u32,
    seqs: &mut SeqCache<'t>,
) -> Result<PendingSeal, DropReason> {
    let fec_entry = t.fecs.get(fec as usize).ok_or(DropReason::NoRoute)?;
    // Only a FEC whose SA is still to be negotiated has none (its index is
    // `SA_PENDING`): the tables are built so.
    let sa = t
        .sa_out
        .get(fec_entry.sa as usize)
        .ok_or(DropReason::SaPending)?;
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
    // The SA's tables hold its template: a FEC without one has no SA.
    let tpl = fec_entry.encap.as_ref().ok_or(DropReason::SaPending)?;
    let head = tpl.len();
    if ipv4::MIN_HEADER_LEN + tpl.ip_payload_len(esp_len) > usize::from(u16::MAX) {
        return Err(DropReason::NoRoom);
    }
    if f.headroom() < head || f.tailroom() < tail {
        return Err(DropReason::NoRoom);
    }
    let seq = seqs.next(fec_entry.sa, sa)?;
    if !f.append(tail) || !f.prepend(head) {
        return Err(DropReason::NoRoom);
    }
    let (hdr, rest) = f.data_mut().split_at_mut(head);
    // Ethernet, label, outer IPv4 (DSCP/ECN copied from the inner packet,
    // RFC 4301 §5.1.2.1), UDP, ESP header and IV (the sequence number).
    if !tpl.write(hdr, tos, esp_len, seq) {
        return Err(DropReason::NoRoom);
    }
    let iv = seq.to_be_bytes();

    let body = &mut rest[..body_len];
    for (i, b) in body[inner_len..inner_len + pad].iter_mut().enumerate() {
        *b = (i + 1) as u8; // RFC 4303 §2.4 default padding 1, 2, 3, ...
    }
    body[inner_len + pad] = pad as u8;
    body[inner_len + pad + 1] = next_header;
    let (a, n) = aad(sa.spi, seq, sa.esn);
    Ok(PendingSeal {
        sa: fec_entry.sa,
        port: fec_entry.port,
        body_len: body_len as u32,
        aad_len: n as u8,
        head: head as u8,
        nonce: sa.gcm.nonce(iv),
        aad: a,
    })
}

/// The inbound SA of the previous frame: a batch usually carries one
/// tunnel, so the SPI table is searched once per SPI change, not per frame.
/// Whether that SA has expired is read at the same time; what each run of
/// frames on one SA authenticated is added to the SA's lifetime counts
/// when the run ends (the SA changes, or the cache is dropped with its
/// batch).
#[derive(Default)]
pub struct InboundCache<'t> {
    last: Option<(u32, &'t InboundSa)>,
    expired: bool,
    run: RunCount<'t>,
}

impl<'t> InboundCache<'t> {
    #[inline]
    fn get(&mut self, t: &'t Tables, spi: u32) -> Option<&'t InboundSa> {
        match self.last {
            Some((s, sa)) if s == spi => Some(sa),
            _ => {
                let sa: &'t InboundSa = t.sa_in.get(&spi)?;
                self.last = Some((spi, sa));
                // A new run: what `open` counts goes to this SA.
                self.expired = sa.sa.life.expired();
                self.run.start(&sa.sa.life);
                Some(sa)
            }
        }
    }
}

/// A frame `unwrap` has checked up to its ICV, waiting for `open`; its
/// nonce and AAD were built a pass ahead, as `PendingSeal`'s are.
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingOpen {
    spi: u32,
    seq: u64,
    /// Outer IPv4 header length: the ESP header starts there.
    ihl: u16,
    /// Bytes from the ESP header to the ICV; 0 if too short to hold one.
    esp_len: u32,
    aad_len: u8,
    nonce: [u8; aead::NONCE_LEN],
    aad: [u8; 12],
    tag: [u8; esp::ICV_LEN],
}

/// The frames of a batch waiting to be opened.
pub type OpenQueue = BatchQueue<PendingOpen>;

/// Verifies and decrypts a frame with verdict `Decrypt` (it starts at the
/// outer IPv4 header); it becomes `Deliver` holding the inner packet. A
/// batch does this in two passes (`unwrap` over every frame, then `open`),
/// which is what the stage chain runs.
#[inline]
pub fn decrypt<'t, F: Frame>(f: &mut F, t: &'t Tables, sas: &mut InboundCache<'t>) -> Verdict {
    match unwrap(f, t, sas) {
        Ok(job) => open(f, t, sas, &job),
        Err(r) => Verdict::Drop(r),
    }
}

/// The first pass of `decrypt`: outer IPv4 and ESP headers checked, the
/// SA found and its endpoints matched, nonce and AAD built. Nothing here
/// depends on the anti-replay window, which earlier frames of the batch
/// may still move.
#[inline]
pub fn unwrap<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    sas: &mut InboundCache<'t>,
) -> Result<PendingOpen, DropReason> {
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
    let pkt = d.get(ihl..total).ok_or(DropReason::Malformed)?;
    let (spi, seq_lo, iv) = {
        let e = esp::EspPacket::new_checked(pkt).map_err(|_| DropReason::Malformed)?;
        (e.spi(), e.seq(), e.iv())
    };
    let inbound = sas.get(t, spi).ok_or(DropReason::UnknownSpi)?;
    let sa: &SaIn = &inbound.sa;
    // A tunnel-mode SA is bound to its endpoints (RFC 4301 §4.1): the same
    // SPI arriving between other addresses belongs to no SA of ours.
    if outer_dst != sa.tunnel_dst || outer_src != sa.tunnel_src {
        return Err(DropReason::UnknownSpi);
    }
    // Past a hard lifetime limit the SA protects nothing more.
    if sas.expired {
        return Err(DropReason::SaExpired);
    }
    // The window is checked in `open`, after the batch's earlier frames
    // have moved it; the ESN high half inferred here is a guess that
    // `open` confirms (it almost always holds, and the AAD is built now).
    let seq = if sa.esn {
        sa.window.infer_esn(seq_lo)
    } else {
        u64::from(seq_lo)
    };
    let head = esp::HEADER_LEN + esp::IV_LEN;
    // Too short to hold an ICV: `open` drops it once the window has had
    // its say (a replayed number is a replay first).
    let body_end = if pkt.len() < head + esp::TRAILER_LEN + esp::ICV_LEN {
        0
    } else {
        pkt.len() - esp::ICV_LEN
    };
    let mut tag = [0u8; esp::ICV_LEN];
    if let Some(icv) = pkt.get(body_end..).filter(|_| body_end > 0) {
        tag.copy_from_slice(icv);
    }
    let (aad, aad_len) = aad(spi, seq, sa.esn);
    Ok(PendingOpen {
        spi,
        seq,
        ihl: ihl as u16,
        esp_len: body_end as u32,
        aad_len: aad_len as u8,
        nonce: sa.gcm.nonce(iv),
        aad,
        tag,
    })
}

/// The second pass of `decrypt`: the sequence number checked against the
/// anti-replay window, the ICV verified and the payload decrypted in
/// place, the number accepted, the trailer and the
/// inbound policy checked; `Deliver` holding the inner packet.
#[inline]
pub fn open<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    sas: &mut InboundCache<'t>,
    job: &PendingOpen,
) -> Verdict {
    match open_one(f, t, sas, job) {
        Ok(()) => Verdict::Deliver,
        Err(r) => Verdict::Drop(r),
    }
}

#[inline]
fn open_one<'t, F: Frame>(
    f: &mut F,
    t: &'t Tables,
    sas: &mut InboundCache<'t>,
    job: &PendingOpen,
) -> Result<(), DropReason> {
    let inbound = sas.get(t, job.spi).ok_or(DropReason::UnknownSpi)?;
    let sa: &SaIn = &inbound.sa;
    let ihl = usize::from(job.ihl);
    // Earlier frames of the batch may have moved the window since `unwrap`:
    // a number one of them took is a replay whatever its ICV, and with ESN
    // the high half is inferred again. The AAD is read where `unwrap` wrote
    // it unless that changed it (a copy made here would be in the store
    // buffer again when the AEAD reads it).
    let seq = if sa.esn {
        sa.window.infer_esn(job.seq as u32)
    } else {
        job.seq
    };
    let rebuilt;
    let aad = if seq == job.seq {
        &job.aad
    } else {
        rebuilt = self::aad(job.spi, seq, true).0;
        &rebuilt
    };
    if !sa.window.check(seq) {
        return Err(DropReason::Replay);
    }
    if job.esp_len == 0 {
        return Err(DropReason::Malformed);
    }
    let head = esp::HEADER_LEN + esp::IV_LEN;
    let body = f
        .data_mut()
        .get_mut(ihl + head..ihl + job.esp_len as usize)
        .ok_or(DropReason::Malformed)?;
    if !sa
        .gcm
        .open_with(&job.nonce, &aad[..usize::from(job.aad_len)], body, &job.tag)
    {
        return Err(DropReason::AuthFailed);
    }
    if !sa.window.accept(seq) {
        return Err(DropReason::Replay);
    }
    // `sas.get` above made this SA's the current run.
    sas.run.add(body.len());
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
