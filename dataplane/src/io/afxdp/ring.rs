//! The four single-producer/single-consumer rings an AF_XDP socket shares
//! with the kernel (fill, completion, RX, TX), mapped from the socket.
//!
//! Each ring is an array of `size` (a power of two) entries plus a
//! producer index, a consumer index and a flags word, at the offsets
//! `XDP_MMAP_OFFSETS` reports. Indices run freely and wrap at `u32`; the
//! entry of index `i` is `i & (size - 1)`. The side that owns an index
//! stores it with release ordering after writing (or before reusing)
//! entries; the other side loads it with acquire ordering.

use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use super::error::AfXdpError;

/// One mapped ring. `T` is `u64` (fill, completion) or `libc::xdp_desc` (RX, TX).
pub struct Ring<T> {
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    size: u32,
    /// Our copy of the index we own (producer on fill/TX, consumer on RX/completion).
    local: u32,
    /// The last value seen of the kernel's index.
    cached: u32,
    map: NonNull<libc::c_void>,
    map_len: usize,
    _t: PhantomData<T>,
}

// SAFETY: the ring memory is owned by this value (unmapped on drop); the
// kernel is the only other party and synchronises through the atomics.
unsafe impl<T: Send> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    /// Maps the ring of `size` entries at page offset `pgoff` of socket `fd`
    /// whose layout `off` describes.
    pub fn map(
        fd: RawFd,
        off: &libc::xdp_ring_offset,
        size: u32,
        pgoff: u64,
        what: &str,
    ) -> Result<Self, AfXdpError> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: mapping a region the kernel provides for this socket; we
        // check the result before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                pgoff as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(AfXdpError::last_os(format!("mapping the {what} ring")));
        }
        let base = p.cast::<u8>();
        // SAFETY: the offsets come from XDP_MMAP_OFFSETS for this socket and
        // lie inside the mapping; the kernel aligns them for their types.
        let at = |o: u64| unsafe { NonNull::new_unchecked(base.add(o as usize)) };
        let producer = at(off.producer).cast::<AtomicU32>();
        let consumer = at(off.consumer).cast::<AtomicU32>();
        let flags = at(off.flags).cast::<AtomicU32>();
        let entries = at(off.desc).cast::<T>();
        Ok(Ring {
            producer,
            consumer,
            flags,
            entries,
            mask: size - 1,
            size,
            local: 0,
            cached: 0,
            // SAFETY: mmap succeeded, so p is not null.
            map: unsafe { NonNull::new_unchecked(p) },
            map_len,
            _t: PhantomData,
        })
    }

    #[inline]
    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping (type invariant).
        unsafe { self.producer.as_ref() }
    }
    #[inline]
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: points into our live mapping (type invariant).
        unsafe { self.consumer.as_ref() }
    }

    /// True when the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: points into our live mapping (type invariant).
        unsafe { self.flags.as_ref() }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// Writes entry `i` (an index we own, not yet published).
    #[inline]
    fn write(&mut self, i: u32, v: T) {
        // SAFETY: i & mask < size entries of the mapped array.
        unsafe { self.entries.as_ptr().add((i & self.mask) as usize).write(v) }
    }

    /// Reads entry `i` (published by the kernel, not yet released).
    #[inline]
    fn read(&self, i: u32) -> T {
        // SAFETY: i & mask < size entries of the mapped array.
        unsafe { self.entries.as_ptr().add((i & self.mask) as usize).read() }
    }

    // ---- producer side (fill, TX) ----

    /// Free entries we may produce (at least `want` if the ring has them).
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.size - self.local.wrapping_sub(self.cached);
        if free >= want {
            return free;
        }
        self.cached = self.cons().load(Ordering::Acquire);
        self.size - self.local.wrapping_sub(self.cached)
    }

    /// Writes `v` as the `k`-th entry after the last published one.
    #[inline]
    pub fn put(&mut self, k: u32, v: T) {
        self.write(self.local.wrapping_add(k), v);
    }

    /// Publishes `n` entries written with `put`.
    #[inline]
    pub fn submit(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.prod().store(self.local, Ordering::Release);
    }

    /// Entries produced that the kernel has not consumed yet.
    #[inline]
    pub fn pending(&self) -> u32 {
        self.local.wrapping_sub(self.cons().load(Ordering::Relaxed))
    }

    // ---- consumer side (RX, completion) ----

    /// Entries ready to consume, at most `max`.
    #[inline]
    pub fn ready(&mut self, max: u32) -> u32 {
        let mut n = self.cached.wrapping_sub(self.local);
        if n == 0 {
            self.cached = self.prod().load(Ordering::Acquire);
            n = self.cached.wrapping_sub(self.local);
        }
        n.min(max)
    }

    /// The `k`-th ready entry.
    #[inline]
    pub fn get(&self, k: u32) -> T {
        self.read(self.local.wrapping_add(k))
    }

    /// Hands `n` consumed entries back to the kernel.
    #[inline]
    pub fn release(&mut self, n: u32) {
        self.local = self.local.wrapping_add(n);
        self.cons().store(self.local, Ordering::Release);
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `map`, used by nothing else.
        unsafe { libc::munmap(self.map.as_ptr(), self.map_len) };
    }
}
