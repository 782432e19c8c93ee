//! Real DPDK with hugepages forced off (`--no-huge`): a `net_pcap` RX -> TX
//! round trip reproduces the input file's frames byte for byte, a
//! multi-queue `net_null` port is configured with RSS, and every mbuf is
//! back in its pool at the end. One test: EAL initialises once per process.
#![cfg(feature = "dpdk")]

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use meshplane::drop_reason::DropReason;
use meshplane::frame::{Batch, Frame, Verdict};
use meshplane::io::dpdk::{EalBuilder, EthDev, EthDevConfig, MemoryMode, Mempool};
use meshplane::io::Port;
use pcap_file::pcap::{PcapPacket, PcapReader, PcapWriter};

const POOL: u32 = 2047;

fn test_frames() -> Vec<Vec<u8>> {
    // Sizes from the minimum to a full 1514-byte Ethernet frame, varied content.
    (0..300u32)
        .map(|i| {
            let len = [60, 64, 128, 511, 1000, 1514][i as usize % 6] + (i as usize % 3);
            let len = len.min(1514);
            (0..len)
                .map(|b| (b as u32 ^ i.wrapping_mul(2654435761)) as u8)
                .collect()
        })
        .collect()
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut w = PcapWriter::new(File::create(path).expect("create pcap")).expect("pcap header");
    for (i, f) in frames.iter().enumerate() {
        let pkt = PcapPacket::new(Duration::from_micros(i as u64), f.len() as u32, f);
        w.write_packet(&pkt).expect("write packet");
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(File::open(path).expect("open pcap")).expect("pcap header");
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.expect("packet").data.into_owned());
    }
    out
}

#[test]
fn pcap_round_trip_is_byte_identical_without_hugepages() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dpdk-pcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let frames = test_frames();
    write_pcap(&input, &frames);

    let pcap_dev = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        output.display()
    );
    let eal = EalBuilder::new()
        .file_prefix(format!("mp-test-pcap-{}", std::process::id()))
        .memory(MemoryMode::NoHuge)
        .no_huge_memory_mb(256)
        .vdev(pcap_dev.clone())
        .vdev("net_null0")
        .log_level("notice")
        .args(["--no-telemetry"])
        .init()
        .expect("EAL init without hugepages");
    assert_eq!(eal.memory(), MemoryMode::NoHuge);

    let pool = Mempool::new(&eal, "pcap_pool", POOL, 32).expect("mempool");

    // net_pcap: every frame read from in.pcap is sent to out.pcap unchanged.
    {
        let dev = EthDev::open(&eal, &pcap_dev, &EthDevConfig::default(), &pool).expect("open");
        let mut port = dev.queue(0).expect("queue");
        let mut batch = Batch::new();
        let (mut rx, mut tx, mut idle) = (0usize, 0usize, 0);
        while idle < 1000 {
            let got = port.rx_burst(&mut batch);
            if got == 0 {
                idle += 1;
                continue;
            }
            idle = 0;
            rx += got;
            while !batch.is_empty() {
                tx += port.tx_burst(&mut batch);
            }
        }
        assert_eq!(rx, frames.len());
        assert_eq!(tx, frames.len());
        let s = dev.stats().expect("stats");
        assert_eq!(s.ipackets, frames.len() as u64);
        assert_eq!(s.opackets, frames.len() as u64);
        assert_eq!(s.ierrors + s.oerrors + s.rx_nombuf, 0);
        drop(port);
        // Closing the device flushes and closes out.pcap.
        dev.close().expect("close");
    }
    let out = read_pcap(&output);
    assert_eq!(out.len(), frames.len());
    for (i, (a, b)) in frames.iter().zip(out.iter()).enumerate() {
        assert_eq!(a, b, "frame {i} differs");
    }
    assert_eq!(pool.available(), POOL, "pcap scenario leaked");

    // A frame larger than one mbuf arrives chained over several; stages
    // only see one segment, so it is marked dropped as oversize (never
    // truncated).
    {
        let jumbo_in = dir.join("jumbo.pcap");
        let frames = vec![vec![1u8; 100], vec![2u8; 5000], vec![3u8; 200]];
        write_pcap(&jumbo_in, &frames);
        let spec = format!("net_pcap_jumbo,rx_pcap={}", jumbo_in.display());
        let dev = EthDev::hotplug(&eal, &spec, &EthDevConfig::default(), &pool).expect("hotplug");
        let mut port = dev.queue(0).expect("queue");
        let mut batch = Batch::new();
        let mut got = 0;
        for _ in 0..100 {
            got += port.rx_burst(&mut batch);
        }
        assert_eq!(got, 3);
        assert!(batch.frames().iter().any(|f| f.segments() > 1));
        let lens: Vec<usize> = batch.frames().iter().map(|f| f.len()).collect();
        for (f, v) in batch.frames().iter().zip(batch.verdicts()) {
            if f.segments() > 1 {
                assert_eq!(*v, Verdict::Drop(DropReason::Oversize));
            } else {
                assert_eq!(*v, Verdict::Input, "{lens:?}");
            }
        }
        batch.clear();
        drop(port);
        dev.close().expect("close");
    }
    assert_eq!(pool.available(), POOL, "jumbo scenario leaked");

    // Several queues with RSS on IP/UDP where the device offers it
    // (net_null advertises the hash types); every queue receives.
    {
        let cfg = EthDevConfig {
            rx_queues: 2,
            tx_queues: 2,
            ..EthDevConfig::default()
        };
        let dev = EthDev::open(&eal, "net_null0", &cfg, &pool).expect("open null0");
        assert!(dev.promiscuous());
        let mut q0 = dev.queue(0).expect("q0");
        let mut q1 = dev.queue(1).expect("q1");
        let mut b = Batch::new();
        for q in [&mut q0, &mut q1] {
            assert!(q.rx_burst(&mut b) > 0);
            assert!(b.frames().iter().all(|f| f.len() == 64));
            while !b.is_empty() {
                q.tx_burst(&mut b);
            }
        }
    }
    assert_eq!(pool.available(), POOL, "null scenario leaked");
    let _ = std::fs::remove_dir_all(&dir);
}
