//! An owned DPDK packet buffer.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use dpdk_sys::rte_mbuf;

use crate::frame::{Batch, Frame};

/// One owned `rte_mbuf`, returned to its pool on drop.
///
/// `repr(transparent)` over the pointer, so a `[Mbuf]` is a
/// `struct rte_mbuf *[]` and bursts go to and from the PMD without
/// conversion. `Send` (ownership moves between threads with the pointer)
/// but not `Sync`.
///
/// Ports are configured without scattered RX and with a data room that
/// holds the configured MTU, so received mbufs are one segment; `data()` is
/// the first segment (all of the packet for those). A PMD that chains a
/// frame anyway has it dropped as `oversize` at RX.
/// The window operations follow `rte_pktmbuf_{prepend,adj,trim,append}`
/// and are done inline on the header fields for single-segment mbufs.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an Mbuf is the only owner of its buffer; moving it to another
// thread moves that ownership. Mempool puts and gets are thread-safe.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `m` must point to a valid, initialised mbuf that nobody else owns or
    /// frees, and whose pool outlives it.
    #[inline]
    pub unsafe fn from_raw(m: NonNull<rte_mbuf>) -> Self {
        Mbuf(m)
    }

    /// Gives up ownership without freeing (e.g. after the PMD took it).
    #[inline]
    pub fn into_raw(self) -> NonNull<rte_mbuf> {
        ManuallyDrop::new(self).0
    }

    /// The raw pointer, still owned by `self`.
    #[inline]
    pub fn as_ptr(&self) -> *mut rte_mbuf {
        self.0.as_ptr()
    }

    #[inline]
    fn raw(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf (type invariant).
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn raw_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: we own a valid mbuf exclusively (&mut self).
        unsafe { self.0.as_mut() }
    }

    #[inline]
    fn single_segment(&self) -> bool {
        self.raw().nb_segs == 1
    }

    /// Total packet length over all segments (`rte_pktmbuf_pkt_len`).
    #[inline]
    pub fn pkt_len(&self) -> usize {
        self.raw().pkt_len as usize
    }

    /// Bytes over all segments, summed segment by segment: unlike
    /// `pkt_len`, right even when a PMD filled a chain without updating the
    /// first segment's `pkt_len` (22.11's net_pcap with a jumbo frame).
    pub fn chain_len(&self) -> usize {
        let mut n = 0usize;
        let mut m: *const rte_mbuf = self.0.as_ptr();
        while !m.is_null() {
            // SAFETY: we own a valid chain; every `next` is a valid mbuf of
            // it or null at the end.
            unsafe {
                n += usize::from((*m).data_len);
                m = (*m).next;
            }
        }
        n
    }

    /// Number of segments.
    #[inline]
    pub fn segments(&self) -> u16 {
        self.raw().nb_segs
    }

    /// The DPDK port the frame was received on (`mbuf->port`).
    #[inline]
    pub fn port(&self) -> u16 {
        self.raw().port
    }

    /// The RSS hash the NIC computed, if any.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.raw();
        if m.ol_flags & dpdk_sys::RTE_MBUF_F_RX_RSS_HASH as u64 != 0 {
            // SAFETY: the RSS flag says the hash member of the union is set;
            // it is a plain u32 either way.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain included) and never use it again.
        unsafe { dpdk_sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("pkt_len", &self.pkt_len())
            .field("data_len", &self.raw().data_len)
            .field("headroom", &self.raw().data_off)
            .field("segs", &self.segments())
            .finish()
    }
}

impl Frame for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        let m = self.raw();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the mbuf's
        // buffer (DPDK invariant); the borrow is tied to &self, which owns it.
        unsafe {
            std::slice::from_raw_parts(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        let m = self.raw_mut();
        // SAFETY: as in data(); &mut self gives exclusive access. Mbufs we
        // own are never shared (refcnt 1: nothing here clones or attaches).
        unsafe {
            std::slice::from_raw_parts_mut(
                m.buf_addr.cast::<u8>().add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    #[inline]
    fn len(&self) -> usize {
        self.raw().data_len as usize
    }

    #[inline]
    fn headroom(&self) -> usize {
        self.raw().data_off as usize
    }

    #[inline]
    fn tailroom(&self) -> usize {
        if self.single_segment() {
            let m = self.raw();
            m.buf_len as usize - m.data_off as usize - m.data_len as usize
        } else {
            // SAFETY: valid mbuf; the shim walks to the last segment.
            unsafe {
                let last = last_segment(self.0.as_ptr());
                dpdk_sys::shim_rte_pktmbuf_tailroom(last) as usize
            }
        }
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > m.data_off as usize {
            return false;
        }
        // n <= data_off <= u16::MAX, and data_off + data_len <= buf_len.
        let n16 = n as u16;
        m.data_off -= n16;
        m.data_len += n16;
        m.pkt_len += n as u32;
        true
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let m = self.raw_mut();
        if n > m.data_len as usize {
            return false;
        }
        let n16 = n as u16;
        m.data_off += n16;
        m.data_len -= n16;
        m.pkt_len -= n as u32;
        true
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if self.single_segment() {
            let m = self.raw_mut();
            if n > m.data_len as usize {
                return false;
            }
            m.data_len -= n as u16;
            m.pkt_len -= n as u32;
            return true;
        }
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the chain; the shim checks the length.
        unsafe { dpdk_sys::shim_rte_pktmbuf_trim(self.0.as_ptr(), n16) == 0 }
    }

    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if self.single_segment() {
            if n > self.tailroom() {
                return false;
            }
            let m = self.raw_mut();
            m.data_len += n as u16;
            m.pkt_len += n as u32;
            return true;
        }
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: we own the chain; the shim checks the tailroom.
        unsafe { !dpdk_sys::shim_rte_pktmbuf_append(self.0.as_ptr(), n16).is_null() }
    }
}

/// The last segment of a chain (`rte_pktmbuf_lastseg`).
///
/// # Safety
/// `m` must be a valid mbuf chain.
unsafe fn last_segment(mut m: *mut rte_mbuf) -> *mut rte_mbuf {
    // SAFETY: caller guarantees a valid chain, terminated by a null `next`.
    unsafe {
        while !(*m).next.is_null() {
            m = (*m).next;
        }
    }
    m
}

/// Frees every frame of a batch with one `rte_pktmbuf_free_bulk` call.
pub fn free_batch(batch: &mut Batch<Mbuf>) {
    let v = batch.frames_vec_mut();
    let n = v.len();
    if n == 0 {
        return;
    }
    // SAFETY: the vector holds n owned mbufs laid out as rte_mbuf pointers
    // (repr(transparent)); we drop ownership by setting the length to 0
    // before anything can observe them again.
    unsafe {
        v.set_len(0);
        dpdk_sys::rte_pktmbuf_free_bulk(v.as_mut_ptr().cast::<*mut rte_mbuf>(), n as u32);
    }
}
