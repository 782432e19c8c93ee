//! pcap files as a backend: read a capture (pcap or pcapng, Ethernet link
//! type) once into memory, replay it through a node's ports, and write what
//! the node transmits with nanosecond timestamps.

#![warn(missing_docs)]

use crate::drop_reason::DropReason;
use crate::frame::{Batch, Frame, HeapFrame, Verdict};
use crate::io::{Port, ENCAP_TAILROOM};
use crossbeam::queue::ArrayQueue;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::{Block, PcapNgReader};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A capture file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PcapFileError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a pcap/pcapng file, or corrupt.
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the record number when known.
        what: String,
    },
    /// A link type other than Ethernet.
    #[error("{path}: link type {linktype:?} is not supported (meshplane reads Ethernet captures, DLT_EN10MB = 1)")]
    LinkType {
        /// The file.
        path: PathBuf,
        /// The link type found.
        linktype: DataLink,
    },
}

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapturedPacket {
    /// Capture timestamp since the Unix epoch.
    pub ts: Duration,
    /// The frame bytes (Ethernet).
    pub data: Vec<u8>,
}

/// Summary of what a file held besides the packets.
#[derive(Clone, Debug, Default)]
pub struct ReadInfo {
    /// Packets whose capture was shorter than the packet on the wire
    /// (a snap-length capture such as `tcpdump -s 64`); they are kept as
    /// captured.
    pub truncated: u64,
    /// Records longer than [`MAX_RECORD`] bytes, skipped: no backend
    /// carries such a frame (an mbuf segment holds at most 65535 bytes).
    pub skipped_oversize: u64,
    /// `true` for pcapng.
    pub pcapng: bool,
}

/// The longest record replayed; longer ones are skipped and counted in
/// [`ReadInfo::skipped_oversize`].
pub const MAX_RECORD: usize = 65535;

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Reads every packet of a pcap or pcapng file (Ethernet only).
pub fn read_file(path: &Path) -> Result<(Vec<CapturedPacket>, ReadInfo), PcapFileError> {
    // Regular files only: a FIFO or device would be read without end.
    let (f, _) = crate::file_read::open_regular(path).map_err(|e| PcapFileError::Format {
        path: path.to_path_buf(),
        what: e.to_string(),
    })?;
    read_from(BufReader::with_capacity(1 << 20, f), path)
}

/// Reads every packet of a capture held in memory, as [`read_file`] reads
/// a file (`name` names it in errors).
pub fn read_bytes(
    bytes: &[u8],
    name: &Path,
) -> Result<(Vec<CapturedPacket>, ReadInfo), PcapFileError> {
    read_from(std::io::Cursor::new(bytes), name)
}

/// Reads every packet of the capture `f` holds from its start.
fn read_from<R: std::io::BufRead + Seek>(
    mut f: R,
    path: &Path,
) -> Result<(Vec<CapturedPacket>, ReadInfo), PcapFileError> {
    let io = |source| PcapFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let fmt = |what: String| PcapFileError::Format {
        path: path.to_path_buf(),
        what,
    };
    let mut magic = [0u8; 4];
    match f.read_exact(&mut magic) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(fmt(
                "file too short to be a capture (no pcap/pcapng header)".into(),
            ))
        }
        Err(e) => return Err(io(e)),
    }
    // The same open file from its start: never a different file that
    // replaced the path in between.
    f.rewind().map_err(io)?;
    let r = f;
    let mut out = Vec::new();
    let mut info = ReadInfo::default();
    if magic == PCAPNG_MAGIC {
        info.pcapng = true;
        let mut rd = PcapNgReader::new(r).map_err(|e| fmt(format!("not a pcapng file: {e}")))?;
        let mut idx = 0u64;
        while let Some(b) = rd.next_block() {
            idx += 1;
            let b = b.map_err(|e| fmt(format!("block {idx}: {e}")))?;
            let (iface, ts, orig, data) = match b {
                Block::EnhancedPacket(p) => (
                    p.interface_id,
                    p.timestamp,
                    p.original_len,
                    p.data.into_owned(),
                ),
                Block::SimplePacket(p) => (0, Duration::ZERO, p.original_len, p.data.into_owned()),
                Block::Packet(p) => (
                    u32::from(p.interface_id),
                    Duration::from_nanos(p.timestamp),
                    p.original_len,
                    p.data.into_owned(),
                ),
                _ => continue,
            };
            let lt = rd
                .interfaces()
                .get(iface as usize)
                .map(|i| i.linktype)
                .ok_or_else(|| {
                    fmt(format!(
                        "block {idx}: packet names undeclared interface {iface}"
                    ))
                })?;
            if lt != DataLink::ETHERNET {
                return Err(PcapFileError::LinkType {
                    path: path.to_path_buf(),
                    linktype: lt,
                });
            }
            if data.len() > MAX_RECORD {
                info.skipped_oversize += 1;
                continue;
            }
            if (orig as usize) > data.len() {
                info.truncated += 1;
            }
            out.push(CapturedPacket { ts, data });
        }
    } else {
        let mut rd =
            PcapReader::new(r).map_err(|e| fmt(format!("not a pcap or pcapng file: {e}")))?;
        let h = rd.header();
        if h.datalink != DataLink::ETHERNET {
            return Err(PcapFileError::LinkType {
                path: path.to_path_buf(),
                linktype: h.datalink,
            });
        }
        let nanos = h.ts_resolution == TsResolution::NanoSecond;
        let mut idx = 0u64;
        // Raw records, checked here: pcap_file's own check refuses a record
        // whose original length exceeds the file's snap length, which is
        // what every snap-length capture (`tcpdump -s 64`) holds.
        while let Some(p) = rd.next_raw_packet() {
            idx += 1;
            let p = p.map_err(|e| fmt(format!("packet {idx}: {e} (file truncated or corrupt)")))?;
            let ns = if nanos {
                Some(p.ts_frac)
            } else {
                p.ts_frac.checked_mul(1000)
            };
            let ns = ns.filter(|&ns| ns < 1_000_000_000).ok_or_else(|| {
                fmt(format!(
                    "packet {idx}: timestamp fraction {} is not below one second (file corrupt)",
                    p.ts_frac
                ))
            })?;
            if p.incl_len > p.orig_len {
                return Err(fmt(format!(
                    "packet {idx}: captured length {} exceeds its length on the wire {} (file corrupt)",
                    p.incl_len, p.orig_len
                )));
            }
            if p.data.len() > MAX_RECORD {
                info.skipped_oversize += 1;
                continue;
            }
            if p.orig_len > p.incl_len {
                info.truncated += 1;
            }
            out.push(CapturedPacket {
                ts: Duration::new(u64::from(p.ts_sec), ns),
                data: p.data.into_owned(),
            });
        }
    }
    Ok((out, info))
}

/// Writes Ethernet frames to a pcap file with nanosecond timestamps.
pub struct CaptureWriter {
    w: PcapWriter<BufWriter<File>>,
    path: PathBuf,
    /// Packets written so far.
    pub packets: u64,
}

impl CaptureWriter {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> Result<CaptureWriter, PcapFileError> {
        let f = File::create(path).map_err(|source| PcapFileError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let header = PcapHeader {
            ts_resolution: TsResolution::NanoSecond,
            datalink: DataLink::ETHERNET,
            snaplen: 65535,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let w =
            PcapWriter::with_header(BufWriter::with_capacity(1 << 20, f), header).map_err(|e| {
                PcapFileError::Format {
                    path: path.to_path_buf(),
                    what: e.to_string(),
                }
            })?;
        Ok(CaptureWriter {
            w,
            path: path.to_path_buf(),
            packets: 0,
        })
    }

    /// Appends one frame.
    pub fn write(&mut self, ts: Duration, data: &[u8]) -> Result<(), PcapFileError> {
        self.w
            .write_packet(&PcapPacket::new(ts, data.len() as u32, data))
            .map_err(|e| PcapFileError::Format {
                path: self.path.clone(),
                what: e.to_string(),
            })?;
        self.packets += 1;
        Ok(())
    }

    /// Flushes buffered packets to the file.
    pub fn finish(self) -> Result<(), PcapFileError> {
        let path = self.path.clone();
        let mut bw = self.w.into_writer();
        std::io::Write::flush(&mut bw).map_err(|source| PcapFileError::Io { path, source })
    }
}

/// A recycling pool of heap frames shared by a node's replay ports.
pub type FramePool = Arc<ArrayQueue<HeapFrame>>;

/// Creates a frame pool holding at most `cap` idle frames.
pub fn frame_pool(cap: usize) -> FramePool {
    Arc::new(ArrayQueue::new(cap))
}

/// A port fed from a preloaded capture and capturing what it sends.
///
/// RX copies each preloaded frame into a recycled `HeapFrame` (the one copy,
/// standing in for a NIC's DMA); TX parks sent frames with their index so the
/// driver can write them out and recycle the buffers.
pub struct ReplayPort {
    source: Option<Arc<[CapturedPacket]>>,
    cursor: usize,
    loops_left: u64,
    pool: FramePool,
    max_frame: usize,
    /// Frames sent, with the capture timestamp they carry.
    pub sent: Vec<(Duration, HeapFrame)>,
    /// Frames received so far.
    pub received: u64,
}

impl ReplayPort {
    /// A port that only transmits.
    pub fn sink(pool: FramePool) -> ReplayPort {
        ReplayPort {
            source: None,
            cursor: 0,
            loops_left: 0,
            pool,
            max_frame: usize::MAX,
            sent: Vec::new(),
            received: 0,
        }
    }

    /// Frames longer than `max_frame` bytes are received and counted, then
    /// dropped as `oversize`, as a device configured for that MTU would
    /// (see `IoConfig::max_frame`). No limit by default.
    pub fn with_max_frame(mut self, max_frame: usize) -> ReplayPort {
        self.max_frame = max_frame;
        self
    }

    /// A port that receives `packets` `loops` times over, in order.
    pub fn source(packets: Arc<[CapturedPacket]>, loops: u64, pool: FramePool) -> ReplayPort {
        ReplayPort {
            source: Some(packets),
            loops_left: loops,
            ..ReplayPort::sink(pool)
        }
    }

    /// True when the source has nothing more to give.
    pub fn exhausted(&self) -> bool {
        match &self.source {
            None => true,
            Some(_) => self.loops_left == 0,
        }
    }

    /// Returns a frame's buffer to the pool.
    pub fn recycle(&self, f: HeapFrame) {
        let _ = self.pool.push(f);
    }
}

impl Port for ReplayPort {
    type Frame = HeapFrame;

    fn rx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        let Some(src) = &self.source else { return 0 };
        let mut n = 0;
        while batch.room() > 0 && self.loops_left > 0 && !src.is_empty() {
            let p = &src[self.cursor];
            // A recycled buffer serves when it leaves the stages their
            // tailroom behind this frame; a jumbo frame gets a larger one.
            let recycled = self.pool.pop().map(|mut f| {
                f.reset_from(&p.data);
                f
            });
            let frame = match recycled {
                Some(f) if f.tailroom() >= ENCAP_TAILROOM => f,
                _ => {
                    let mut f = HeapFrame::with_room(
                        (p.data.len() + ENCAP_TAILROOM).max(crate::frame::DEFAULT_DATA_ROOM),
                    );
                    f.reset_from(&p.data);
                    f
                }
            };
            if p.data.len() > self.max_frame {
                let _ = batch.push_with(frame, Verdict::Drop(DropReason::Oversize), 0);
            } else {
                let _ = batch.push(frame);
            }
            n += 1;
            self.cursor += 1;
            if self.cursor == src.len() {
                self.cursor = 0;
                self.loops_left -= 1;
            }
        }
        if src.is_empty() {
            self.loops_left = 0;
        }
        self.received += n as u64;
        n
    }

    fn tx_burst(&mut self, batch: &mut Batch<HeapFrame>) -> usize {
        // Sent frames are stamped with the wall clock, as a capture on the
        // wire would be.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let n = batch.len();
        for f in batch.consume_front(n) {
            self.sent.push((now, f));
        }
        n
    }

    fn frame_from(&mut self, bytes: &[u8]) -> Option<HeapFrame> {
        let mut f = self
            .pool
            .pop()
            .unwrap_or_else(|| HeapFrame::with_room(bytes.len()));
        f.reset_from(bytes);
        Some(f)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read back their own files
mod tests {
    use super::*;

    fn le32(v: u32) -> [u8; 4] {
        v.to_le_bytes()
    }

    /// A little-endian pcapng file: section header, an Ethernet interface
    /// with `if_tsresol` = 9 (ns), one 14-byte enhanced packet.
    fn small_pcapng() -> Vec<u8> {
        let mut b = Vec::new();
        // Section header block.
        for w in [0x0a0d_0d0a, 28, 0x1a2b_3c4d, 1] {
            b.extend_from_slice(&le32(w));
        }
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&le32(28));
        // Interface description block with one option and end-of-options.
        for w in [1, 32, 1, 0] {
            b.extend_from_slice(&le32(w));
        }
        b.extend_from_slice(&[9, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&le32(32));
        // Enhanced packet block: 14 bytes of data padded to 16.
        for w in [6, 48, 0, 0, 1_000, 14, 14] {
            b.extend_from_slice(&le32(w));
        }
        b.extend_from_slice(&[0xff; 6]);
        b.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00, 0, 0]);
        b.extend_from_slice(&le32(48));
        b
    }

    fn small_pcap(dir: &Path) -> Vec<u8> {
        let path = dir.join("small.pcap");
        let mut w = CaptureWriter::create(&path).expect("create");
        w.write(Duration::from_nanos(1_500), &[0xab; 60])
            .expect("write");
        w.finish().expect("finish");
        std::fs::read(&path).expect("read back")
    }

    /// A little-endian microsecond pcap with snap length `snaplen` and
    /// records of (captured bytes, length on the wire).
    fn raw_pcap(snaplen: u32, records: &[(usize, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        for w in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, snaplen, 1] {
            b.extend_from_slice(&le32(w));
        }
        for (i, &(cap, orig)) in records.iter().enumerate() {
            for w in [1_700_000_000, 250_000, cap as u32, orig] {
                b.extend_from_slice(&le32(w));
            }
            b.extend((0..cap).map(|j| (i + j) as u8));
        }
        b
    }

    #[test]
    fn a_snap_length_capture_is_read_as_captured() {
        let dir = std::env::temp_dir().join(format!("mp-pcap-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("snap64.pcap");
        // What `tcpdump -s 64` writes: snap length 64, each record cut to
        // 64 bytes of a longer frame.
        std::fs::write(&path, raw_pcap(64, &[(64, 1514), (60, 60), (64, 98)])).expect("write");
        let (pkts, info) = read_file(&path).expect("a snap-length capture is valid pcap");
        assert_eq!(
            pkts.iter().map(|p| p.data.len()).collect::<Vec<_>>(),
            [64, 60, 64]
        );
        assert_eq!((info.truncated, info.skipped_oversize), (2, 0));
        assert_eq!(pkts[0].ts, Duration::new(1_700_000_000, 250_000_000));
        // Captured longer than on the wire is still corrupt, and says so.
        std::fs::write(&path, raw_pcap(64, &[(64, 60)])).expect("write");
        let e = read_file(&path).expect_err("incl_len > orig_len");
        assert!(
            e.to_string()
                .contains("packet 1: captured length 64 exceeds its length on the wire 60"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn records_over_65535_bytes_are_skipped_and_counted() {
        let dir = std::env::temp_dir().join(format!("mp-pcap-big-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("big.pcap");
        let recs = [(60, 60), (70_000, 70_000), (65_535, 65_535), (9018, 9018)];
        std::fs::write(&path, raw_pcap(262_144, &recs)).expect("write");
        let (pkts, info) = read_file(&path).expect("an oversize record is no reason to fail");
        assert_eq!(
            pkts.iter().map(|p| p.data.len()).collect::<Vec<_>>(),
            [60, 65_535, 9018]
        );
        assert_eq!(info.skipped_oversize, 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn replay_port_drops_frames_over_its_limit_as_oversize() {
        let pkts: Arc<[CapturedPacket]> = [60usize, 1598, 1599, 9018]
            .iter()
            .map(|&n| CapturedPacket {
                ts: Duration::ZERO,
                data: vec![0x5a; n],
            })
            .collect();
        let mut port = ReplayPort::source(pkts, 1, frame_pool(8)).with_max_frame(1598);
        let mut batch = Batch::new();
        let (n, bytes) = port.rx_burst_counted(&mut batch);
        assert_eq!((n, bytes), (4, 60 + 1598 + 1599 + 9018));
        let over = Verdict::Drop(DropReason::Oversize);
        assert_eq!(
            batch.verdicts()[..4],
            [Verdict::Input, Verdict::Input, over, over]
        );
    }

    #[test]
    fn corrupt_and_truncated_captures_are_errors_not_panics() {
        let dir = std::env::temp_dir().join(format!("mp-pcap-corrupt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("in");
        let ng = small_pcapng();
        std::fs::write(&path, &ng).expect("write");
        let (pkts, info) = read_file(&path).expect("the intact pcapng reads");
        assert!(info.pcapng);
        assert_eq!((pkts.len(), pkts[0].data.len()), (1, 14));
        std::fs::write(&path, &ng[..3]).expect("write");
        let e = read_file(&path).expect_err("3 bytes");
        assert!(e.to_string().contains("file too short"), "{e}");
        let pcap = small_pcap(&dir);
        for good in [ng, pcap] {
            for cut in 0..good.len() {
                std::fs::write(&path, &good[..cut]).expect("write");
                let _ = read_file(&path);
            }
            for i in 0..good.len() {
                for v in [0x00, 0xff, 0x7f, 0x80, good[i] ^ 0x01, good[i] ^ 0x40] {
                    let mut bad = good.clone();
                    bad[i] = v;
                    std::fs::write(&path, &bad).expect("write");
                    let _ = read_file(&path);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
