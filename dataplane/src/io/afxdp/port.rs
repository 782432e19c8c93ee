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
        };
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
            if self.stash.len() < STASH_MAX {
                self.stash.push(self.umem.chunk_of(a));
            } else {
                self.umem.push_free(a);
            }
        }
        self.xsk.comp.release(n);
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
        self.reap_completions();
        self.refill();
        let n = self.xsk.rx.ready(batch.room() as u32);
        if n == 0 {
            if self.xsk.fill.needs_wakeup() {
                self.xsk.kick_rx();
            }
            // Copy mode sends only from sendto, a burst at a time: keep
            // kicking while descriptors wait in the TX ring.
            if self.xsk.tx.pending() > 0 {
                self.xsk.kick_tx();
            }
            return 0;
        }
        // The frames count as UMEM references from here on.
        self.umem.frames_out(n as usize);
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
            let _ = batch.push_with(f, v, 0);
        }
        self.xsk.rx.release(n);
        n as usize
    }

    #[inline]
    fn frame_from(&mut self, bytes: &[u8]) -> Option<UmemFrame> {
        crate::io::filled(self.alloc()?, bytes)
    }

    fn tx_burst(&mut self, batch: &mut Batch<UmemFrame>) -> usize {
        self.reap_completions();
        let want = batch.len() as u32;
        if want == 0 {
            return 0;
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
                let Some(c) = self.take_chunk() else { break };
                let size = self.umem.chunk_size();
                let len = f.len().min(size);
                let off = RX_HEADROOM.min(size - len);
                // SAFETY: chunk c is ours and has `size` bytes; off + len
                // <= size; source and destination are distinct
                // chunks.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        f.data().as_ptr(),
                        self.umem.area().add(c as usize + off),
                        len,
                    )
                };
                self.copied += 1;
                libc::xdp_desc {
                    addr: c + off as u64,
                    len: len as u32,
                    options: 0,
                }
            };
            self.xsk.tx.put(sent as u32, d);
            sent += 1;
        }
        if sent == 0 {
            self.kick();
            return 0;
        }
        self.xsk.tx.submit(sent as u32);
        for f in batch.consume_front(sent) {
            if self.umem.owns(&f) {
                // The kernel holds the chunk until its completion.
                std::mem::forget(f);
            }
            // A copied foreign frame drops here, back to its own UMEM.
        }
        self.umem.frames_in(own);
        self.kick();
        sent
    }
}
