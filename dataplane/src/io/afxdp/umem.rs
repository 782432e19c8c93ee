//! The UMEM: one memory area of fixed-size frames that the kernel and the
//! sockets of one worker share, and [`UmemFrame`], a frame of it that
//! implements [`Frame`].
//!
//! Frames are chunks of one power-of-two size per UMEM (aligned chunk
//! mode): 2 KiB for the default MTU, 4 KiB for a larger one. The kernel
//! registers no chunk larger than a page (`XDP_UMEM_REG` says EINVAL to
//! 8 KiB and up, on hugepages too, as of Linux 6.18). For frames longer
//! than a chunk holds (jumbo MTUs) a UMEM also has jumbo slots: runs of
//! consecutive chunks behind the ordinary ones, never given to the kernel
//! to fill. A packet the kernel delivers over several chunks (multi-buffer
//! AF_XDP, `XDP_USE_SG`) is gathered into one slot, where the stages see
//! it whole, and a slot is sent as one descriptor per chunk it spans.
//! The kernel writes a received packet `XDP_PACKET_HEADROOM` (256) bytes
//! into its chunk, which is the frame's headroom for encapsulation.
//!
//! Free chunks live in the sockets' fill rings, in each port's small
//! private stash and in one lock-free queue shared by the sockets of the
//! UMEM (the frames dropped by stages land there, from any thread). The
//! area is unmapped when the last socket and the last frame are gone: the
//! frames count as references, taken and given back per burst.

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use crossbeam::queue::ArrayQueue;

use super::error::AfXdpError;
use crate::frame::Frame;

/// Bytes per UMEM frame (chunk) at the default MTU: the smallest chunk.
pub const FRAME_SIZE: usize = 2048;
/// The largest chunk the kernel registers: a 4 KiB page.
pub const MAX_CHUNK: usize = 4096;
/// Where the kernel puts a received packet in its chunk
/// (`XDP_PACKET_HEADROOM`): the headroom a received frame starts with.
pub const RX_HEADROOM: usize = 256;
const HUGEPAGE: usize = 2 << 20;

/// The chunk size a UMEM needs for frames of up to `max_frame` bytes: the
/// smallest power of two holding the kernel's RX headroom, the frame and
/// the encapsulation tailroom, at least [`FRAME_SIZE`].
pub fn chunk_size_for(max_frame: usize) -> usize {
    (max_frame + RX_HEADROOM + crate::io::ENCAP_TAILROOM)
        .next_power_of_two()
        .max(FRAME_SIZE)
}

/// The longest frame a chunk of `chunk` bytes carries: less the kernel's
/// RX headroom and the encapsulation tailroom.
pub const fn frame_room(chunk: usize) -> usize {
    chunk - RX_HEADROOM - crate::io::ENCAP_TAILROOM
}

/// The shared state behind [`Umem`] handles and frames.
pub struct UmemShared {
    area: NonNull<u8>,
    len: usize,
    frames: u32,
    /// Bytes per chunk (a power of two).
    chunk: u32,
    /// `!(chunk - 1)`: a chunk's offset from any address inside it.
    mask: u64,
    hugepages: bool,
    /// Free chunk offsets not held by any socket or port.
    free: ArrayQueue<u64>,
    /// Handles plus frames outside the rings.
    refs: AtomicUsize,
    /// Area offset of the first jumbo slot (= frames x chunk).
    jumbo_base: u64,
    /// Bytes per jumbo slot (a multiple of the chunk; 0: no slots).
    jumbo_size: u32,
    /// Free jumbo slots, by area offset.
    jumbo_free: ArrayQueue<u64>,
    /// Per slot, the descriptors of it the kernel still has to complete.
    jumbo_pending: Box<[std::sync::atomic::AtomicU8]>,
}

// SAFETY: the area is plain memory owned by this value; the free queue and
// the counter are thread-safe; chunks are handed out to one owner at a time.
unsafe impl Send for UmemShared {}
// SAFETY: as above; shared access goes through the queue and the atomics.
unsafe impl Sync for UmemShared {}

impl Drop for UmemShared {
    fn drop(&mut self) {
        // SAFETY: the mapping made in Umem::new; no frame or socket uses it
        // any more (the reference count reached zero).
        unsafe { libc::munmap(self.area.as_ptr().cast(), self.len) };
    }
}

/// Drops one reference to `p`, freeing it with the last.
///
/// # Safety
/// `p` came from `Umem::new` and the caller owns one of its references.
unsafe fn release(p: NonNull<UmemShared>, n: usize) {
    // SAFETY: the caller owns n references, so the value is alive.
    if unsafe { p.as_ref() }.refs.fetch_sub(n, Ordering::Release) == n {
        fence(Ordering::Acquire);
        // SAFETY: that was the last reference; the box came from Box::leak.
        drop(unsafe { Box::from_raw(p.as_ptr()) });
    }
}

/// A counted handle to a UMEM area.
pub struct Umem(NonNull<UmemShared>);

// SAFETY: see UmemShared; the handle is a counted reference to it.
unsafe impl Send for Umem {}
// SAFETY: through &Umem only the thread-safe queue and counter change;
// handing out chunks (`frame`) is unsafe and up to the single owner.
unsafe impl Sync for Umem {}

impl Clone for Umem {
    fn clone(&self) -> Self {
        self.shared().refs.fetch_add(1, Ordering::Relaxed);
        Umem(self.0)
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference.
        unsafe { release(self.0, 1) }
    }
}

impl std::fmt::Debug for Umem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Umem")
            .field("frames", &self.frames())
            .field("chunk", &self.chunk_size())
            .field("bytes", &self.len())
            .field("hugepages", &self.hugepages())
            .field("free", &self.free_frames())
            .finish()
    }
}

impl Umem {
    /// Maps an area of `frames` frames of [`FRAME_SIZE`] bytes, on 2 MiB
    /// hugepages when `hugepages` and some are free (else on ordinary
    /// pages), all frames free.
    pub fn new(frames: u32, hugepages: bool) -> Result<Umem, AfXdpError> {
        Umem::with_chunk(frames, FRAME_SIZE, hugepages)
    }

    /// As [`new`](Umem::new) with chunks of `chunk` bytes (a power of two,
    /// `FRAME_SIZE..=MAX_CHUNK`).
    pub fn with_chunk(frames: u32, chunk: usize, hugepages: bool) -> Result<Umem, AfXdpError> {
        Umem::with_jumbo(frames, chunk, hugepages, 0, 0)
    }

    /// As [`with_chunk`](Umem::with_chunk), plus `slots` jumbo slots each
    /// holding frames of up to `max_frame` bytes with the RX headroom in
    /// front and the encapsulation tailroom behind.
    pub fn with_jumbo(
        frames: u32,
        chunk: usize,
        hugepages: bool,
        slots: u32,
        max_frame: usize,
    ) -> Result<Umem, AfXdpError> {
        if frames == 0 {
            return Err(AfXdpError::Config("a UMEM needs at least one frame".into()));
        }
        if !chunk.is_power_of_two() || !(FRAME_SIZE..=MAX_CHUNK).contains(&chunk) {
            return Err(AfXdpError::Config(format!(
                "UMEM chunks of {chunk} B: the size must be a power of two from {FRAME_SIZE} to \
                 {MAX_CHUNK} B"
            )));
        }
        let jumbo_size = if slots == 0 {
            0
        } else {
            (RX_HEADROOM + max_frame + crate::io::ENCAP_TAILROOM).next_multiple_of(chunk)
        };
        let jumbo_base = frames as usize * chunk;
        let bytes = jumbo_base + slots as usize * jumbo_size;
        let mut mapped = None;
        if hugepages {
            let len = bytes.div_ceil(HUGEPAGE) * HUGEPAGE;
            // SAFETY: anonymous private mapping; result checked.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE
                        | libc::MAP_ANONYMOUS
                        | libc::MAP_HUGETLB
                        | libc::MAP_POPULATE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                tracing::debug!(
                    "UMEM of {bytes} bytes: no free hugepages ({}); using ordinary pages",
                    std::io::Error::last_os_error()
                );
            } else {
                mapped = Some((p, len, true));
            }
        }
        let (p, len, huge) = match mapped {
            Some(m) => m,
            None => {
                // SAFETY: anonymous private mapping; result checked.
                let p = unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        bytes,
                        libc::PROT_READ | libc::PROT_WRITE,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                        -1,
                        0,
                    )
                };
                if p == libc::MAP_FAILED {
                    return Err(AfXdpError::last_os(format!(
                        "mapping a UMEM of {bytes} bytes"
                    )));
                }
                (p, bytes, false)
            }
        };
        let free = ArrayQueue::new(frames as usize);
        for i in 0..frames as u64 {
            let _ = free.push(i * chunk as u64);
        }
        let jumbo_free = ArrayQueue::new(slots.max(1) as usize);
        for i in 0..slots as usize {
            let _ = jumbo_free.push((jumbo_base + i * jumbo_size) as u64);
        }
        let shared = Box::new(UmemShared {
            // SAFETY: mmap succeeded, so p is not null.
            area: unsafe { NonNull::new_unchecked(p.cast()) },
            len,
            frames,
            chunk: chunk as u32,
            mask: !(chunk as u64 - 1),
            hugepages: huge,
            free,
            refs: AtomicUsize::new(1),
            jumbo_base: jumbo_base as u64,
            jumbo_size: jumbo_size as u32,
            jumbo_free,
            jumbo_pending: (0..slots)
                .map(|_| std::sync::atomic::AtomicU8::new(0))
                .collect(),
        });
        Ok(Umem(NonNull::from(Box::leak(shared))))
    }

    #[inline]
    fn shared(&self) -> &UmemShared {
        // SAFETY: this handle keeps the value alive.
        unsafe { self.0.as_ref() }
    }

    /// Start of the area.
    #[inline]
    pub fn area(&self) -> *mut u8 {
        self.shared().area.as_ptr()
    }

    /// Bytes registered with the kernel (the chunks and the jumbo slots).
    pub fn registered_len(&self) -> u64 {
        let sh = self.shared();
        sh.jumbo_base + sh.jumbo_pending.len() as u64 * u64::from(sh.jumbo_size)
    }

    /// Jumbo slots in the area (0: frames never span chunks).
    pub fn jumbo_slots(&self) -> usize {
        self.shared().jumbo_pending.len()
    }

    /// Bytes per jumbo slot.
    pub fn jumbo_size(&self) -> usize {
        self.shared().jumbo_size as usize
    }

    /// Jumbo slots free (not holding a frame or a frame being sent).
    pub fn free_jumbo(&self) -> usize {
        self.shared().jumbo_free.len()
    }

    /// True when area offset `addr` lies in a jumbo slot.
    #[inline]
    pub(crate) fn is_jumbo(&self, addr: u64) -> bool {
        addr >= self.shared().jumbo_base
    }

    /// An empty frame in a free jumbo slot (headroom `RX_HEADROOM`, room
    /// for the largest frame the slots were made for).
    pub(crate) fn alloc_jumbo(&self) -> Option<UmemFrame> {
        let sh = self.shared();
        let slot = sh.jumbo_free.pop()?;
        self.frames_out(1);
        Some(UmemFrame {
            // SAFETY: the slot lies inside the area and is now ours.
            chunk: unsafe { NonNull::new_unchecked(self.area().add(slot as usize)) },
            start: RX_HEADROOM as u32,
            end: RX_HEADROOM as u32,
            cap: sh.jumbo_size,
            umem: self.0,
        })
    }

    /// The descriptors that send frame `f` of this area: one, or for a
    /// frame in a jumbo slot one per chunk it spans, all but the last
    /// marked `XDP_PKT_CONTD`. Written to `out`; returns how many (0 if
    /// `out` is too short). Marks the slot as waiting for that many
    /// completions: see [`complete`](Umem::complete).
    #[inline]
    pub(crate) fn descs(&self, f: &UmemFrame, out: &mut [libc::xdp_desc]) -> usize {
        let d = f.desc(self);
        if !self.is_jumbo(d.addr) {
            let Some(o) = out.first_mut() else { return 0 };
            *o = d;
            return 1;
        }
        let sh = self.shared();
        let chunk = u64::from(sh.chunk);
        let (mut at, end) = (d.addr, d.addr + u64::from(d.len));
        let mut n = 0;
        loop {
            let stop = ((at & sh.mask) + chunk).min(end);
            let Some(o) = out.get_mut(n) else { return 0 };
            *o = libc::xdp_desc {
                addr: at,
                len: (stop - at) as u32,
                options: if stop < end { libc::XDP_PKT_CONTD } else { 0 },
            };
            n += 1;
            at = stop;
            if at >= end {
                break;
            }
        }
        let slot = self.slot_index(d.addr);
        sh.jumbo_pending[slot].store(n as u8, Ordering::Relaxed);
        n
    }

    #[inline]
    fn slot_index(&self, addr: u64) -> usize {
        let sh = self.shared();
        ((addr - sh.jumbo_base) / u64::from(sh.jumbo_size)) as usize
    }

    /// Takes back a descriptor the kernel completed (TX): an ordinary
    /// chunk is returned as its offset, for the caller to reuse; a jumbo
    /// slot's chunk counts down its slot, which is free again after its
    /// last descriptor (None).
    #[inline]
    pub(crate) fn complete(&self, addr: u64) -> Option<u64> {
        if !self.is_jumbo(addr) {
            return Some(self.chunk_of(addr));
        }
        let sh = self.shared();
        let slot = self.slot_index(addr);
        let p = sh.jumbo_pending.get(slot)?;
        if p.fetch_sub(1, Ordering::Relaxed) == 1 {
            let _ = sh
                .jumbo_free
                .push(sh.jumbo_base + slot as u64 * u64::from(sh.jumbo_size));
        }
        None
    }

    /// Bytes per chunk (frame).
    #[inline]
    pub fn chunk_size(&self) -> usize {
        self.shared().chunk as usize
    }

    /// The offset of the chunk that holds area offset `addr`.
    #[inline]
    pub(crate) fn chunk_of(&self, addr: u64) -> u64 {
        addr & self.shared().mask
    }

    /// Bytes mapped (rounded up to whole hugepages).
    pub fn len(&self) -> usize {
        self.shared().len
    }

    /// True for an area without frames (never: `new` refuses it).
    pub fn is_empty(&self) -> bool {
        self.frames() == 0
    }

    /// Frames in the area.
    pub fn frames(&self) -> u32 {
        self.shared().frames
    }

    /// Whether the area sits on hugepages.
    pub fn hugepages(&self) -> bool {
        self.shared().hugepages
    }

    /// Handles to this area plus frames outside the kernel's rings (in
    /// batches, stashes being built, ...): what a leak would raise.
    pub fn references(&self) -> usize {
        self.shared().refs.load(Ordering::Acquire)
    }

    /// Frames in the shared free queue (not in a ring, a stash or a batch).
    pub fn free_frames(&self) -> usize {
        self.shared().free.len()
    }

    /// True when both handles name the same area.
    #[inline]
    pub fn same(&self, other: &Umem) -> bool {
        self.0 == other.0
    }

    /// True when `f` is a frame of this area.
    #[inline]
    pub fn owns(&self, f: &UmemFrame) -> bool {
        f.umem == self.0
    }

    /// Takes a free chunk from the shared queue.
    #[inline]
    pub(crate) fn pop_free(&self) -> Option<u64> {
        self.shared().free.pop()
    }

    /// Returns a free chunk to the shared queue.
    #[inline]
    pub(crate) fn push_free(&self, chunk: u64) {
        let _ = self.shared().free.push(self.chunk_of(chunk));
    }

    /// Turns a descriptor the kernel filled (RX) into an owned frame.
    ///
    /// # Safety
    /// `addr`/`len` come from this UMEM's RX ring (inside one chunk) and
    /// the chunk is owned by no one else.
    #[inline]
    pub(crate) unsafe fn frame(&self, addr: u64, len: u32) -> UmemFrame {
        let sh = self.shared();
        let off = (addr & !sh.mask) as u32;
        let end = (off + len).min(sh.chunk);
        UmemFrame {
            // SAFETY: addr lies inside the area (caller), so the chunk does too.
            chunk: unsafe { NonNull::new_unchecked(self.area().add((addr & sh.mask) as usize)) },
            start: off,
            end,
            cap: sh.chunk,
            umem: self.0,
        }
    }

    /// Counts `n` frames just created with `frame` as references.
    #[inline]
    pub(crate) fn frames_out(&self, n: usize) {
        self.shared().refs.fetch_add(n, Ordering::Relaxed);
    }

    /// Gives back the references of `n` frames turned into descriptors
    /// (`UmemFrame::into_desc`). This handle still holds one, so the
    /// count cannot reach zero here.
    #[inline]
    pub(crate) fn frames_in(&self, n: usize) {
        self.shared().refs.fetch_sub(n, Ordering::Release);
    }

    /// An empty frame from the shared queue (headroom `RX_HEADROOM`), for
    /// a sender that builds its own packets.
    pub fn alloc(&self) -> Option<UmemFrame> {
        let c = self.pop_free()?;
        self.frames_out(1);
        // SAFETY: c is a free chunk of this area, now ours.
        Some(unsafe { self.frame(c + RX_HEADROOM as u64, 0) })
    }
}

/// One packet in a UMEM chunk. Returns its chunk to the UMEM's free queue
/// when dropped; a port turns it into a TX descriptor without copying.
pub struct UmemFrame {
    chunk: NonNull<u8>,
    start: u32,
    end: u32,
    /// The chunk's size: `end` never passes it.
    cap: u32,
    umem: NonNull<UmemShared>,
}

// SAFETY: the frame owns its chunk exclusively; dropping it from another
// thread only touches the thread-safe queue and counter of the UMEM.
unsafe impl Send for UmemFrame {}

impl UmemFrame {
    /// The TX descriptor of this frame in `umem` (which must own it): the
    /// offset of the data in the area and its length.
    #[inline]
    pub(crate) fn desc(&self, umem: &Umem) -> libc::xdp_desc {
        debug_assert!(umem.owns(self));
        let base = self.chunk.as_ptr() as u64 - umem.area() as u64;
        libc::xdp_desc {
            addr: base + u64::from(self.start),
            len: self.end - self.start,
            options: 0,
        }
    }
}

impl Drop for UmemFrame {
    fn drop(&mut self) {
        // SAFETY: a frame holds one reference, so the UMEM is alive; the
        // chunk offset lies inside its area.
        unsafe {
            let sh = self.umem.as_ref();
            let off = self.chunk.as_ptr() as u64 - sh.area.as_ptr() as u64;
            let _ = if off >= sh.jumbo_base {
                sh.jumbo_free.push(off)
            } else {
                sh.free.push(off)
            };
            release(self.umem, 1);
        }
    }
}

impl std::fmt::Debug for UmemFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UmemFrame")
            .field("len", &(self.end - self.start))
            .field("headroom", &self.start)
            .finish()
    }
}

impl Frame for UmemFrame {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: start <= end <= cap (the chunk size) within our exclusively owned chunk.
        unsafe {
            std::slice::from_raw_parts(
                self.chunk.as_ptr().add(self.start as usize),
                (self.end - self.start) as usize,
            )
        }
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in data(); &mut self gives exclusive access.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.chunk.as_ptr().add(self.start as usize),
                (self.end - self.start) as usize,
            )
        }
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.start as usize
    }
    #[inline]
    fn tailroom(&self) -> usize {
        (self.cap - self.end) as usize
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.start as usize {
            return false;
        }
        self.start -= n as u32;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > (self.end - self.start) as usize {
            return false;
        }
        self.start += n as u32;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > (self.end - self.start) as usize {
            return false;
        }
        self.end -= n as u32;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > (self.cap - self.end) as usize {
            return false;
        }
        self.end += n as u32;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_move_their_window_and_return_on_drop() {
        let u = Umem::new(8, false).unwrap();
        assert_eq!(u.free_frames(), 8);
        let mut f = u.alloc().unwrap();
        assert_eq!(u.free_frames(), 7);
        assert_eq!(f.headroom(), RX_HEADROOM);
        assert!(f.append(4));
        f.data_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert!(f.prepend(2));
        f.data_mut()[..2].copy_from_slice(&[9, 9]);
        assert_eq!(f.data(), &[9, 9, 1, 2, 3, 4]);
        assert!(f.adj(3) && f.trim(1));
        assert_eq!(f.data(), &[2, 3]);
        assert!(!f.prepend(RX_HEADROOM + 100) && !f.adj(3) && !f.trim(3));
        assert!(!f.append(FRAME_SIZE));
        assert_eq!(f.tailroom(), FRAME_SIZE - RX_HEADROOM - 3);
        drop(f);
        assert_eq!(u.free_frames(), 8);
    }

    #[test]
    fn a_umem_of_page_sized_chunks_gives_frames_that_room() {
        let u = Umem::with_chunk(8, MAX_CHUNK, false).unwrap();
        assert_eq!(u.chunk_size(), 4096);
        assert_eq!(u.registered_len(), 8 * 4096);
        let mut f = u.alloc().unwrap();
        assert_eq!(f.tailroom(), 4096 - RX_HEADROOM);
        assert!(f.append(frame_room(4096)));
        assert!(!f.append(crate::io::ENCAP_TAILROOM + 1));
        let d = f.desc(&u);
        std::mem::forget(f);
        assert_eq!(d.addr % 4096, RX_HEADROOM as u64);
        assert_eq!(u.chunk_of(d.addr + 100), d.addr - RX_HEADROOM as u64);
        u.frames_in(1);
        u.push_free(d.addr);
        assert_eq!(u.free_frames(), 8);
        // Only powers of two the kernel registers.
        assert!(Umem::with_chunk(8, 3000, false).is_err());
        assert!(Umem::with_chunk(8, 8192, false).is_err());
        assert_eq!(chunk_size_for(1598), 2048);
        assert_eq!(chunk_size_for(1760), 2048);
        assert_eq!(chunk_size_for(1761), 4096);
    }

    #[test]
    fn hugepages_are_used_when_free_and_optional_otherwise() {
        let u = Umem::new(1024, true).unwrap();
        assert_eq!(u.len() % if u.hugepages() { HUGEPAGE } else { 1 }, 0);
        assert!(u.len() >= 1024 * FRAME_SIZE);
        let mut f = u.alloc().unwrap();
        assert!(f.append(100));
        f.data_mut().fill(1);
        drop(f);
        assert_eq!(u.free_frames(), 1024);
    }

    #[test]
    fn frames_keep_the_area_alive_after_the_handle_goes() {
        let u = Umem::new(4, false).unwrap();
        let mut f = u.alloc().unwrap();
        drop(u);
        assert!(f.append(10));
        f.data_mut().fill(7);
        assert_eq!(f.data(), &[7; 10]);
        drop(f);
    }

    #[test]
    fn a_frame_sent_as_a_descriptor_points_at_its_data() {
        let u = Umem::new(4, false).unwrap();
        let mut f = u.alloc().unwrap();
        assert!(f.append(60) && f.prepend(4));
        let d = f.desc(&u);
        std::mem::forget(f);
        assert_eq!(d.len, 64);
        assert_eq!(d.addr % FRAME_SIZE as u64, (RX_HEADROOM - 4) as u64);
        u.frames_in(1);
        u.push_free(d.addr);
        assert_eq!(u.free_frames(), 4);
    }
}
