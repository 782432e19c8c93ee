//! [`AfXdpPort`]: one AF_XDP socket (one queue of one interface) as a
//! worker's [`Port`].

use std::sync::Arc;

use super::bpf::XdpAttachment;
use super::socket::{BindMode, Xsk, XskStats};
use super::umem::{frame_room, Umem, UmemFrame, RX_HEADROOM};
use crate::drop_reason::DropReason;
use crate::frame::{Batch, Frame, Verdict, BURST};
use crate::io::Port;

/// Free chunks a port keeps for itself before handing them to the UMEM's
/// shared queue (for the other sockets of the UMEM to refill from).
const STASH_MAX: usize = 4 * BURST;

/// Most descriptors one packet takes (the kernel's `MAX_SKB_FRAGS` + 1).
const MAX_FRAGS: usize = 18;

/// One RX/TX queue pair of an interface over AF_XDP.
///
/// Received frames are [`UmemFrame`]s in the UMEM the port shares with
/// the node's other ports of the same worker: sending one of them on any
/// of those ports moves its descriptor, the payload is never copied. A
/// frame of another UMEM is copied into this one (counted in
/// [`copied`](AfXdpPort::copied)).
pub struct AfXdpPort {
    xsk: Xsk,
    umem: Umem,
    stash: Vec<u64>,
    mode: BindMode,
    name: String,
    queue: u32,
    copied: u64,
    xdp: Arc<XdpAttachment>,
    /// Longest frame handed to the stages; longer ones arrive as drops
    /// (`oversize`).
    max_frame: usize,
    /// Bound multi-buffer (`XDP_USE_SG`): packets may span chunks.
    sg: bool,
}

impl std::fmt::Debug for AfXdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpPort")
            .field("iface", &self.xdp.iface())
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("xdp", &self.xdp.mode())
            .finish()
    }
}

impl AfXdpPort {
    /// Wraps a bound socket, stocks its fill ring and steers its queue to
    /// it in the interface's XSKMAP.
    pub(crate) fn new(
        xsk: Xsk,
        umem: Umem,
        mode: BindMode,
        name: String,
        queue: u32,
        xdp: Arc<XdpAttachment>,
    ) -> Result<Self, super::AfXdpError> {
        let max_frame = frame_room(umem.chunk_size());
        let mut p = AfXdpPort {
            xsk,
            umem,
            stash: Vec::with_capacity(STASH_MAX),
            mode,
            name,
            queue,
            copied: 0,
            xdp,
            max_frame,
            sg: false,
        };
        p.sg = p.umem.jumbo_slots() > 0;
        p.refill();
        p.xdp.register(queue, p.xsk.fd())?;
        Ok(p)
    }

    /// Frames longer than `max_frame` (the node's `[io] mtu` admits) are
    /// received as `oversize` drops instead of going to the stages.
    pub(crate) fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// The port's name in the node configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        self.xdp.iface()
    }

    /// The interface queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Copy or zero-copy, as the kernel bound the socket.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Where the redirect program runs on this interface.
    pub fn xdp_mode(&self) -> super::bpf::XdpAttachMode {
        self.xdp.mode()
    }

    /// The UMEM this port receives into.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }

    /// Frames from another UMEM this port had to copy to send.
    pub fn copied(&self) -> u64 {
        self.copied
    }

    /// The kernel's counters for this socket.
    pub fn stats(&self) -> XskStats {
        self.xsk.stats()
    }

    /// A handle that reads this socket's counters from any thread.
    pub fn stats_handle(&self) -> Result<super::socket::XskStatsHandle, super::AfXdpError> {
        self.xsk.stats_handle()
    }

    /// Frames sent that the kernel has not yet consumed from the TX ring.
    pub fn tx_pending(&self) -> u32 {
        self.xsk.tx.pending()
    }

    /// An empty frame of this port's UMEM (headroom 256 bytes), for a
    /// sender that builds its own packets; `None` when all are in use.
    pub fn alloc(&mut self) -> Option<UmemFrame> {
        self.reap_completions();
        match self.stash.pop() {
            Some(c) => {
                self.umem.frames_out(1);
                // SAFETY: c is a free chunk of this UMEM, now ours.
                Some(unsafe { self.umem.frame(c + RX_HEADROOM as u64, 0) })
            }
            None => self.umem.alloc(),
        }
    }

    /// An empty frame with room for `len` bytes: a chunk, or a jumbo slot
    /// for a frame longer than a chunk holds; `None` when none is free.
    pub fn alloc_len(&mut self, len: usize) -> Option<UmemFrame> {
        if len <= frame_room(self.umem.chunk_size()) {
            return self.alloc();
        }
        self.reap_completions();
        self.umem.alloc_jumbo()
    }

    /// Moves TX completions (chunks the kernel is done with) to the stash,
    /// the overflow to the UMEM's shared queue.
    #[inline]
    fn reap_completions(&mut self) {
        let n = self.xsk.comp.ready(u32::MAX);
        if n == 0 {
            return;
        }
        for k in 0..n {
            let a = self.xsk.comp.get(k);
            // A jumbo slot goes back to its own queue after its last chunk.
            let Some(c) = self.umem.complete(a) else {
                continue;
            };
            self.give_back(c);
        }
        self.xsk.comp.release(n);
    }

    /// With nothing received: wake the kernel to fill, and (copy mode
    /// sends only from sendto, a burst at a time) to send what waits in
    /// the TX ring.
    #[inline]
    fn idle_kicks(&self) {
        if self.xsk.fill.needs_wakeup() {
            self.xsk.kick_rx();
        }
        if self.xsk.tx.pending() > 0 {
            self.xsk.kick_tx();
        }
    }

    /// A chunk free again: to the stash, or the shared queue when full.
    #[inline]
    fn give_back(&mut self, chunk: u64) {
        if self.stash.len() < STASH_MAX {
            self.stash.push(chunk);
        } else {
            self.umem.push_free(chunk);
        }
    }

    /// Receives over a multi-buffer socket (jumbo MTUs): a packet the
    /// kernel spread over several descriptors (`XDP_PKT_CONTD` on all but
    /// the last) is gathered into a jumbo slot, its chunks given back;
    /// one longer than the port admits, or with no slot free, is counted
    /// whole and dropped (`oversize`, `no_room`). Stops before a packet
    /// whose last descriptor has not arrived yet.
    #[cold]
    fn rx_gather(&mut self, batch: &mut Batch<UmemFrame>) -> (usize, u64) {
        let room = batch.room();
        let n = self.xsk.rx.ready((room + MAX_FRAGS) as u32);
        let (mut k, mut got, mut bytes) = (0u32, 0usize, 0u64);
        while k < n && got < room {
            // The packet's descriptors: [k, end).
            let mut end = k;
            let mut total = 0usize;
            let complete = loop {
                if end == n {
                    break false;
                }
                let d = self.xsk.rx.get(end);
                total += d.len as usize;
                end += 1;
                if d.options & libc::XDP_PKT_CONTD == 0 {
                    break true;
                }
            };
            if !complete {
                break;
            }
            let first = self.xsk.rx.get(k);
            let (f, v) = if end == k + 1 {
                self.umem.frames_out(1);
                // SAFETY: a descriptor the kernel filled from a chunk of
                // our UMEM given through a fill ring; ours again.
                let f = unsafe { self.umem.frame(first.addr, first.len) };
                let v = if total > self.max_frame {
                    Verdict::Drop(DropReason::Oversize)
                } else {
                    Verdict::Input
                };
                (f, v)
            } else {
                self.gather(k, end, total)
            };
            let _ = batch.push_with(f, v, 0);
            bytes += total as u64;
            got += 1;
            k = end;
        }
        if k > 0 {
            self.xsk.rx.release(k);
        }
        (got, bytes)
    }

    /// One packet of `total` bytes in RX descriptors `[k, end)`, as one
    /// frame and its verdict; the descriptors' chunks are given back.
    fn gather(&mut self, k: u32, end: u32, total: usize) -> (UmemFrame, Verdict) {
        let first = self.xsk.rx.get(k);
        // A slot holds the longest frame the port admits (its room was
        // sized for it); one that somehow does not is refused like none.
        let slot = if total > self.max_frame {
            None
        } else {
            self.umem.alloc_jumbo().filter(|f| f.tailroom() >= total)
        };
        let Some(mut f) = slot else {
            // Dropped: the first chunk carries the verdict, whole bytes
            // counted by the caller.
            for j in k + 1..end {
                let d = self.xsk.rx.get(j);
                let c = self.umem.chunk_of(d.addr);
                self.give_back(c);
            }
            self.umem.frames_out(1);
            // SAFETY: as in `rx_gather`: a filled chunk of ours.
            let f = unsafe { self.umem.frame(first.addr, first.len) };
            let r = if total > self.max_frame {
                DropReason::Oversize
            } else {
                DropReason::NoRoom
            };
            return (f, Verdict::Drop(r));
        };
        let mut at = 0usize;
        let grown = f.append(total);
        debug_assert!(grown, "checked above");
        for j in k..end {
            let d = self.xsk.rx.get(j);
            let len = d.len as usize;
            // SAFETY: the descriptor lies inside one chunk of our area (the
            // kernel validated it), filled by the kernel and ours again;
            // the slot is a different part of the area.
            let src =
                unsafe { std::slice::from_raw_parts(self.umem.area().add(d.addr as usize), len) };
            if let Some(dst) = f.data_mut().get_mut(at..at + len) {
                dst.copy_from_slice(src);
            }
            at += len;
            let c = self.umem.chunk_of(d.addr);
            self.give_back(c);
        }
        (f, Verdict::Input)
    }

    /// Sends over a multi-buffer socket: a frame in a jumbo slot goes as
    /// one descriptor per chunk it spans (`XDP_PKT_CONTD` on all but the
    /// last); a frame of another UMEM is copied into a chunk, or into a
    /// jumbo slot when it is longer than a chunk holds.
    #[cold]
    fn tx_descs(&mut self, batch: &mut Batch<UmemFrame>) -> usize {
        let want = batch.len();
        let mut avail = self.xsk.tx.free((want * MAX_FRAGS) as u32) as usize;
        let mut descs = [libc::xdp_desc {
            addr: 0,
            len: 0,
            options: 0,
        }; MAX_FRAGS];
        let (mut put, mut sent, mut own) = (0u32, 0usize, 0usize);
        while sent < want {
            let f = &batch.frames()[sent];
            let n = if self.umem.owns(f) {
                let n = self.umem.descs(f, &mut descs);
                if n == 0 || n > avail {
                    break;
                }
                own += 1;
                n
            } else {
                match self.copy_in(f.data(), &mut descs, avail) {
                    Some(n) => n,
                    None => break,
                }
            };
            for d in &descs[..n] {
                self.xsk.tx.put(put, *d);
                put += 1;
            }
            avail -= n;
            sent += 1;
        }
        self.submit_tx(batch, sent, put, own)
    }

    /// Hands the `put` descriptors queued for the first `sent` frames of
    /// `batch` (`own` of them this UMEM's) to the kernel and removes those
    /// frames: ours are the kernel's until their completions, copied ones
    /// go back to their own UMEM. Returns `sent`.
    #[inline]
    fn submit_tx(
        &mut self,
        batch: &mut Batch<UmemFrame>,
        sent: usize,
        put: u32,
        own: usize,
    ) -> usize {
        if sent == 0 {
            self.kick();
            return 0;
        }
        self.xsk.tx.submit(put);
        for f in batch.consume_front(sent) {
            if self.umem.owns(&f) {
                std::mem::forget(f);
            }
        }
        self.umem.frames_in(own);
        self.kick();
        sent
    }

    /// Copies `data` (a frame of another UMEM) into a free chunk or jumbo
    /// slot of ours and writes its descriptors to `out`; None when nothing
    /// is free or it would take more than `avail` descriptors.
    fn copy_in(&mut self, data: &[u8], out: &mut [libc::xdp_desc], avail: usize) -> Option<usize> {
        if avail == 0 {
            return None;
        }
        let size = self.umem.chunk_size();
        if data.len() <= size {
            let c = self.take_chunk()?;
            // Headroom is of no use to a frame being sent: what the chunk
            // leaves of it (an encapsulated frame may have used some).
            let off = RX_HEADROOM.min(size - data.len());
            // SAFETY: chunk c is ours and has `size` bytes; off + len <=
            // size; the source is another area.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    self.umem.area().add(c as usize + off),
                    data.len(),
                )
            };
            out[0] = libc::xdp_desc {
                addr: c + off as u64,
                len: data.len() as u32,
                options: 0,
            };
            self.copied += 1;
            return Some(1);
        }
        let mut g = self.umem.alloc_jumbo()?;
        if !g.append(data.len()) {
            return None;
        }
        g.data_mut().copy_from_slice(data);
        let n = self.umem.descs(&g, out);
        if n == 0 || n > avail {
            return None;
        }
        // The slot is the kernel's until its last completion.
        std::mem::forget(g);
        self.umem.frames_in(1);
        self.copied += 1;
        Some(n)
    }

    /// Tops the fill ring up from the stash, then from the shared queue.
    #[inline]
    fn refill(&mut self) {
        let free = self.xsk.fill.free(BURST as u32);
        if free < BURST as u32 {
            return;
        }
        let mut k = 0;
        while k < free {
            let c = match self.stash.pop() {
                Some(c) => c,
                None => match self.umem.pop_free() {
                    Some(c) => c,
                    None => break,
                },
            };
            self.xsk.fill.put(k, c);
            k += 1;
        }
        if k > 0 {
            self.xsk.fill.submit(k);
        }
    }

    /// A free chunk for a copy: stash first, then the shared queue.
    #[inline]
    fn take_chunk(&mut self) -> Option<u64> {
        self.stash.pop().or_else(|| self.umem.pop_free())
    }

    /// After queueing TX descriptors: in copy mode the kernel sends from
    /// `sendto`; in zero-copy mode only when the driver asks for it.
    #[inline]
    fn kick(&self) {
        if self.mode == BindMode::Copy || self.xsk.tx.needs_wakeup() {
            self.xsk.kick_tx();
        }
    }

    /// The simplest forward step, with neither frames nor stages: moves up
    /// to a burst of received descriptors from this port's RX ring
    /// straight into `tx`'s TX ring (the baseline the benchmark compares
    /// the pipeline with). `tx` must share this port's UMEM; returns how
    /// many were moved, 0 if it does not.
    pub fn forward_raw(&mut self, tx: &mut AfXdpPort) -> usize {
        if !self.umem.same(&tx.umem) {
            return 0;
        }
        self.reap_completions();
        self.refill();
        tx.reap_completions();
        let n = self
            .xsk
            .rx
            .ready(BURST as u32)
            .min(tx.xsk.tx.free(BURST as u32));
        if n == 0 {
            if self.xsk.fill.needs_wakeup() {
                self.xsk.kick_rx();
            }
            if tx.xsk.tx.pending() > 0 {
                tx.xsk.kick_tx();
            }
            return 0;
        }
        for k in 0..n {
            let d = self.xsk.rx.get(k);
            tx.xsk.tx.put(k, d);
        }
        self.xsk.rx.release(n);
        tx.xsk.tx.submit(n);
        tx.kick();
        n as usize
    }
}

impl Drop for AfXdpPort {
    fn drop(&mut self) {
        // The stash goes back to the UMEM for the sockets that remain
        // (frames in this socket's rings go with it).
        for c in self.stash.drain(..) {
            self.umem.push_free(c);
        }
    }
}

impl Port for AfXdpPort {
    type Frame = UmemFrame;

    #[inline]
    fn rx_burst(&mut self, batch: &mut Batch<UmemFrame>) -> usize {
        self.rx_burst_counted(batch).0
    }

    #[inline]
    fn rx_burst_counted(&mut self, batch: &mut Batch<UmemFrame>) -> (usize, u64) {
        self.reap_completions();
        self.refill();
        if self.sg {
            let (got, bytes) = self.rx_gather(batch);
            if got == 0 {
                self.idle_kicks();
            }
            return (got, bytes);
        }
        let n = self.xsk.rx.ready(batch.room() as u32);
        if n == 0 {
            self.idle_kicks();
            return (0, 0);
        }
        // The frames count as UMEM references from here on.
        self.umem.frames_out(n as usize);
        let mut bytes = 0u64;
        for k in 0..n {
            let d = self.xsk.rx.get(k);
            // SAFETY: the kernel filled this descriptor from a chunk of our
            // UMEM that we gave it through a fill ring; it is ours again.
            let f = unsafe { self.umem.frame(d.addr, d.len) };
            // Longer than the MTU admits: counted as received, then dropped.
            let v = if d.len as usize > self.max_frame {
                Verdict::Drop(DropReason::Oversize)
            } else {
                Verdict::Input
            };
            bytes += u64::from(d.len);
            let _ = batch.push_with(f, v, 0);
        }
        self.xsk.rx.release(n);
        (n as usize, bytes)
    }

    #[inline]
    fn frame_from(&mut self, bytes: &[u8]) -> Option<UmemFrame> {
        crate::io::filled(self.alloc_len(bytes.len())?, bytes)
    }

    const WAKES_ON_RX: bool = true;

    /// Waits in poll(2) for a frame in any of the sockets' RX rings (the
    /// kernel wakes the waiter as it fills one) or for `also`, at most
    /// `timeout`.
    fn wait_readable(
        ports: &[Self],
        also: Option<std::os::fd::BorrowedFd<'_>>,
        timeout: std::time::Duration,
    ) -> bool {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let Some(last) = ports.last() else {
            std::thread::sleep(timeout);
            return false;
        };
        let t = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        // No allocation for a worker's usual few ports: slot 0 is `also`
        // (or the last socket), unused slots repeat the last socket
        // (polled twice, no harm).
        const ON_STACK: usize = 16;
        let fd = |i: usize| match (i, also) {
            (0, Some(a)) => a,
            (i, Some(_)) => ports.get(i - 1).unwrap_or(last).xsk.as_fd(),
            (i, None) => ports.get(i).unwrap_or(last).xsk.as_fd(),
        };
        let wait = |fds: &mut [PollFd<'_>]| {
            // EINTR (a signal) or any error: the loop polls again anyway.
            let _ = poll(fds, Some(&t));
            also.is_some() && !fds[0].revents().is_empty()
        };
        let n = ports.len() + usize::from(also.is_some());
        if n <= ON_STACK {
            let mut fds: [PollFd<'_>; ON_STACK] =
                std::array::from_fn(|i| PollFd::from_borrowed_fd(fd(i), PollFlags::IN));
            wait(&mut fds)
        } else {
            let mut fds: Vec<PollFd<'_>> = (0..n)
                .map(|i| PollFd::from_borrowed_fd(fd(i), PollFlags::IN))
                .collect();
            wait(&mut fds)
        }
    }

    fn tx_burst(&mut self, batch: &mut Batch<UmemFrame>) -> usize {
        self.reap_completions();
        let want = batch.len() as u32;
        if want == 0 {
            return 0;
        }
        if self.sg {
            return self.tx_descs(batch);
        }
        let room = want.min(self.xsk.tx.free(want)) as usize;
        let mut sent = 0usize;
        let mut own = 0usize;
        while sent < room {
            let f = &batch.frames()[sent];
            let d = if self.umem.owns(f) {
                own += 1;
                f.desc(&self.umem)
            } else {
                // A frame of another UMEM: copy it into one of ours.
                let mut one = [libc::xdp_desc {
                    addr: 0,
                    len: 0,
                    options: 0,
                }];
                if self.copy_in(f.data(), &mut one, 1).is_none() {
                    break;
                }
                one[0]
            };
            self.xsk.tx.put(sent as u32, d);
            sent += 1;
        }
        self.submit_tx(batch, sent, sent as u32, own)
    }
}
