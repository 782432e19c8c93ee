//! I/O backends, one module each. Every backend hands the pipeline frames
//! through the same `Port` trait, so the stages never know where a frame came from.

use crate::frame::{Batch, Frame};
use std::os::fd::BorrowedFd;
use std::time::Duration;

pub mod afxdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
pub mod memory;
pub mod packet;
pub mod pcap;

/// Tailroom every backend leaves behind a received frame: the ESP padding,
/// trailer and ICV the stages append in place (at most 21 bytes), rounded up.
pub const ENCAP_TAILROOM: usize = 32;

/// One receive/transmit queue pair of a port, as a worker sees it.
pub trait Port {
    /// The buffer type this backend receives into.
    type Frame: Frame;

    /// Receives up to `batch.room()` frames, appending them with verdict
    /// `Input`. Returns how many were added.
    fn rx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize;

    /// As [`Port::rx_burst`], also returning the bytes received (the new
    /// frames' lengths summed). A backend that walks the new frames anyway
    /// sums them there.
    #[inline]
    fn rx_burst_counted(&mut self, batch: &mut Batch<Self::Frame>) -> (usize, u64) {
        let old = batch.len();
        let n = self.rx_burst(batch);
        let bytes = batch
            .frames()
            .get(old..)
            .map_or(0, |new| new.iter().map(|f| f.len() as u64).sum());
        (n, bytes)
    }

    /// Sends frames from the front of `batch`, removing the ones sent; the
    /// unsent remain in `batch` for the caller (to retry or drop and count).
    /// Returns how many were sent.
    fn tx_burst(&mut self, batch: &mut Batch<Self::Frame>) -> usize;

    /// A buffer of this backend holding a copy of `bytes`, to send on this
    /// port: the control thread's own packets, which the worker injects.
    /// None when no buffer is free (or the backend makes none).
    fn frame_from(&mut self, _bytes: &[u8]) -> Option<Self::Frame> {
        None
    }

    /// True when [`Port::wait_readable`] returns as a frame arrives (not
    /// only after its timeout): the nap then no longer bounds a frame's
    /// wait, and an idle worker need not shorten it for sparse traffic.
    const WAKES_ON_RX: bool = false;

    /// An idle worker's nap: returns after `timeout`, or as soon as a
    /// frame may be waiting on one of `ports` (a worker's own queues of
    /// every port) or `also` (the control thread's inject queue) is
    /// readable; true in the last case. A backend whose queues have a
    /// descriptor to wait on (AF_XDP) waits in poll(2), so the first frame
    /// after a quiet spell is taken at once instead of after the nap; the
    /// others (memory, pcap, DPDK) sleep.
    fn wait_readable(_ports: &[Self], _also: Option<BorrowedFd<'_>>, timeout: Duration) -> bool
    where
        Self: Sized,
    {
        std::thread::sleep(timeout);
        false
    }
}

/// A frame made by `alloc` holding a copy of `bytes`: grown to their
/// length (within its room) and filled. None if it has no room for them.
#[inline]
pub fn filled<F: Frame>(mut f: F, bytes: &[u8]) -> Option<F> {
    let have = f.len();
    if have > bytes.len() {
        if !f.trim(have - bytes.len()) {
            return None;
        }
    } else if !f.append(bytes.len() - have) {
        return None;
    }
    f.data_mut().copy_from_slice(bytes);
    Some(f)
}
