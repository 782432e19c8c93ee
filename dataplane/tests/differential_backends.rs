//! The differential check of the stages against the reference forwarder,
//! over the frame types of the real backends: DPDK mbufs from a mempool
//! (EAL without hugepages) and AF_XDP UMEM frames. Their headroom and data
//! room differ from the heap frames of the unit tests, so encapsulation
//! that fits in one may not in another; the verdicts must follow.

use meshplane::frame::Frame;
use meshplane::io::afxdp::Umem;
use meshplane::io::dpdk::{EalBuilder, MemoryMode, Mempool};
use meshplane::reference::diff::{check_chain, heap_frame, MakeFrame, Tally};

/// Byte strings from a fixed xorshift sequence: the same cases every run.
fn seeds(n: usize, len: usize) -> Vec<Vec<u8>> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|_| {
            (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s as u8
                })
                .collect()
        })
        .collect()
}

/// Every embedded node, every entry to the stages, frames from `make`.
fn run<F: Frame>(make: &mut MakeFrame<'_, F>) -> Tally {
    let mut tally = Tally::default();
    for bytes in seeds(120, 3000) {
        if let Err(m) = check_chain(&bytes, make, &mut tally) {
            panic!("{m}");
        }
    }
    tally
}

#[test]
fn dpdk_mbufs_forward_as_the_reference_does() {
    let eal = EalBuilder::new()
        .file_prefix(format!("mp-test-diff-{}", std::process::id()))
        .memory(MemoryMode::NoHuge)
        .no_huge_memory_mb(256)
        .log_level("notice")
        .args(["--no-telemetry"])
        .init()
        .expect("EAL");
    let pool = Mempool::new(&eal, "diff", 4095, 0).expect("mempool");
    let tally = run(&mut |bytes, _room| pool.mbuf_from_bytes(bytes).ok());
    eprintln!(
        "mbufs: {} frames compared, {} sent",
        tally.frames, tally.sent
    );
    assert!(
        tally.frames > 10_000 && tally.sent > 1_000 && tally.punted > 100,
        "{tally:?}"
    );
    assert_eq!(pool.in_use(), 0, "every mbuf went back to its pool");
}

#[test]
fn umem_frames_forward_as_the_reference_does() {
    let umem = Umem::new(4096, false).expect("UMEM");
    let tally = run(&mut |bytes, _room| {
        let mut f = umem.alloc()?;
        if !f.append(bytes.len()) {
            return None;
        }
        f.data_mut().copy_from_slice(bytes);
        Some(f)
    });
    eprintln!(
        "UMEM: {} frames compared, {} sent",
        tally.frames, tally.sent
    );
    assert!(
        tally.frames > 10_000 && tally.sent > 1_000 && tally.punted > 100,
        "{tally:?}"
    );
    assert_eq!(
        umem.free_frames(),
        4096,
        "every frame went back to the UMEM"
    );
}

/// The long run, outside CI: `MESHPLANE_DIFF_FRAMES=10000000 cargo test
/// --release -p meshplane --test differential_backends -- --ignored
/// --nocapture` compares at least that many frames over heap frames,
/// printing progress, and reports the totals.
#[test]
#[ignore = "long: run by hand with MESHPLANE_DIFF_FRAMES"]
fn long_differential_run() {
    let want: u64 = std::env::var("MESHPLANE_DIFF_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut tally = Tally::default();
    let start = std::time::Instant::now();
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut cases = 0u64;
    let mut next_report = 1_000_000;
    while tally.frames < want {
        let len = 256 + (s % 4096) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect();
        cases += 1;
        if let Err(m) = check_chain(&bytes, &mut heap_frame, &mut tally) {
            panic!("case {cases}: {m}");
        }
        if tally.frames >= next_report {
            eprintln!(
                "{} frames ({} sent) in {} cases, {:.0} s",
                tally.frames,
                tally.sent,
                cases,
                start.elapsed().as_secs_f64()
            );
            next_report += 1_000_000;
        }
    }
    eprintln!(
        "differential: {} frames compared ({} sent by both), {} cases, 0 mismatches, {:.0} s",
        tally.frames,
        tally.sent,
        cases,
        start.elapsed().as_secs_f64()
    );
}
