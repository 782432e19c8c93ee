//! Packet buffer pools.

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys::rte_mempool;

use super::eal::Eal;
use super::error::{from_errno, DpdkError};
use super::mbuf::Mbuf;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// A cheap handle: cloning it does not copy the pool. Pools are never freed
/// (an `Mbuf` does not keep its pool alive, so freeing one could leave
/// dangling buffers); they live as long as EAL, i.e. until the process exits.
#[derive(Clone, Debug)]
pub struct Mempool {
    ptr: NonNull<rte_mempool>,
    name: String,
    size: u32,
    data_room: u16,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe by default
// (the ring-based ops used by rte_pktmbuf_pool_create); the handle only
// reads immutable fields or calls thread-safe functions.
unsafe impl Send for Mempool {}
// SAFETY: see Send.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Default data room per mbuf: 2048 bytes plus `RTE_PKTMBUF_HEADROOM` (128).
    pub const DEFAULT_DATA_ROOM: u16 = dpdk_sys::RTE_MBUF_DEFAULT_BUF_SIZE as u16;

    /// The data room (headroom included) that holds a frame of
    /// `max_frame` bytes in one segment with `io::ENCAP_TAILROOM` behind it;
    /// never less than `DEFAULT_DATA_ROOM`. `None` when that exceeds what
    /// an mbuf can hold (65535 bytes).
    pub fn data_room_for(max_frame: usize) -> Option<u16> {
        let need = (dpdk_sys::RTE_PKTMBUF_HEADROOM as usize)
            .checked_add(max_frame)?
            .checked_add(crate::io::ENCAP_TAILROOM)?;
        u16::try_from(need)
            .ok()
            .map(|n| n.max(Self::DEFAULT_DATA_ROOM))
    }

    /// Creates a pool of `size` mbufs with a per-lcore cache of `cache`
    /// (at most 512) and the default data room, on the caller's NUMA socket.
    /// `size` is best a power of two minus one.
    pub fn new(eal: &Eal, name: &str, size: u32, cache: u32) -> Result<Self, DpdkError> {
        Self::with_data_room(eal, name, size, cache, Self::DEFAULT_DATA_ROOM)
    }

    /// Like `new` with an explicit data room (headroom included).
    pub fn with_data_room(
        _eal: &Eal,
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
    ) -> Result<Self, DpdkError> {
        if size == 0 {
            return Err(DpdkError::Config(format!("mempool {name:?}: size 0")));
        }
        if cache > dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE || cache > size {
            return Err(DpdkError::Config(format!(
                "mempool {name:?}: cache {cache} larger than {} or the pool",
                dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE
            )));
        }
        if (data_room as u32) < dpdk_sys::RTE_PKTMBUF_HEADROOM {
            return Err(DpdkError::Config(format!(
                "mempool {name:?}: data room {data_room} smaller than the headroom"
            )));
        }
        let cname = CString::new(name).map_err(|_| DpdkError::Nul(name.into()))?;
        // SAFETY: EAL is initialised (the Eal token proves it); cname is a
        // valid C string that DPDK copies; the other arguments are plain values.
        let p = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                size,
                cache,
                0,
                data_room,
                dpdk_sys::rte_socket_id() as i32,
            )
        };
        let ptr = NonNull::new(p).ok_or_else(|| from_errno(format!("mempool {name:?}")))?;
        Ok(Mempool {
            ptr,
            name: name.into(),
            size,
            data_room,
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Data room of each mbuf, headroom included.
    pub fn data_room(&self) -> u16 {
        self.data_room
    }

    /// Mbufs free right now (per-lcore caches included). Equal to `size()`
    /// when every mbuf has come back: the leak check.
    pub fn available(&self) -> u32 {
        // SAFETY: the pool is valid for the life of the process.
        unsafe { dpdk_sys::shim_rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs handed out and not yet returned.
    pub fn in_use(&self) -> u32 {
        // SAFETY: the pool is valid for the life of the process.
        unsafe { dpdk_sys::shim_rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// One empty mbuf (length 0, default headroom), `None` when exhausted.
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid; rte_pktmbuf_alloc returns NULL or an
        // initialised mbuf we now own.
        let m = unsafe { dpdk_sys::shim_rte_pktmbuf_alloc(self.ptr.as_ptr()) };
        NonNull::new(m).map(|m| {
            // SAFETY: freshly allocated, owned by nobody else.
            unsafe { Mbuf::from_raw(m) }
        })
    }

    /// Appends `n` empty mbufs to `out`, all or nothing
    /// (`rte_pktmbuf_alloc_bulk`).
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> Result<(), DpdkError> {
        let Ok(count) = u32::try_from(n) else {
            return Err(DpdkError::NoMbuf(self.name.clone()));
        };
        out.reserve(n);
        let len = out.len();
        let spare = out.spare_capacity_mut();
        // SAFETY: spare has room for n pointers; Mbuf is repr(transparent)
        // over a non-null rte_mbuf pointer, so the slots have the layout
        // rte_pktmbuf_alloc_bulk writes; on failure it writes nothing usable
        // and we do not extend the length.
        let ret = unsafe {
            dpdk_sys::shim_rte_pktmbuf_alloc_bulk(
                self.ptr.as_ptr(),
                spare.as_mut_ptr().cast::<*mut dpdk_sys::rte_mbuf>(),
                count,
            )
        };
        if ret != 0 {
            return Err(DpdkError::NoMbuf(self.name.clone()));
        }
        // SAFETY: the n slots after len now hold owned, non-null mbufs.
        unsafe { out.set_len(len + n) };
        Ok(())
    }

    /// An mbuf holding a copy of `bytes` (loading frames from a file or a test).
    pub fn mbuf_from_bytes(&self, bytes: &[u8]) -> Result<Mbuf, DpdkError> {
        use crate::frame::Frame;
        let mut m = self
            .alloc()
            .ok_or_else(|| DpdkError::NoMbuf(self.name.clone()))?;
        if !m.append(bytes.len()) {
            return Err(DpdkError::TooLarge {
                len: bytes.len(),
                room: m.tailroom(),
            });
        }
        m.data_mut().copy_from_slice(bytes);
        Ok(m)
    }

    /// The raw pool pointer (for `rte_eth_rx_queue_setup`).
    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }
}
