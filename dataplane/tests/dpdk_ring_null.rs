//! Real DPDK over virtual devices (no NIC): `net_ring` and `net_null`
//! forwarding through `DpdkPort`, `Mbuf` as a `Frame`, and no mbuf leaks.
//! Memory: hugepages when reserved, else `--no-huge` (see `dpdk_pcap_nohuge`
//! for the forced fallback). EAL initialises once per process, so every
//! scenario runs in sequence inside the one test below.
#![cfg(feature = "dpdk")]

use meshplane::frame::{Batch, Frame, BURST};
use meshplane::io::dpdk::{
    hugepages_available, DpdkError, Eal, EalBuilder, EthDev, EthDevConfig, MemoryMode, Mempool,
};
use meshplane::io::Port;

const POOL: u32 = 4095;

fn frame_bytes(i: u32, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|b| (b as u32).wrapping_mul(7).wrapping_add(i) as u8)
        .collect();
    v[..4].copy_from_slice(&i.to_be_bytes());
    v
}

#[test]
fn ring_and_null_forwarding_without_leaks() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let expect_huge = hugepages_available();
    let eal = EalBuilder::new()
        .file_prefix(format!("mp-test-ring-{}", std::process::id()))
        .vdev("net_ring0")
        .vdev("net_ring1")
        .vdev("net_null0")
        .vdev("net_null1")
        .log_level("notice")
        .args(["--no-telemetry"])
        .init()
        .expect("EAL init");
    let want = if expect_huge {
        MemoryMode::Hugepages
    } else {
        MemoryMode::NoHuge
    };
    assert_eq!(eal.memory(), want);
    assert_eq!(Eal::get(), Some(eal));
    assert_eq!(eal.port_count(), 4);

    // EAL initialises once per process: a second init is an error, not UB.
    match EalBuilder::new().init() {
        Err(DpdkError::AlreadyInitialised) => {}
        other => panic!("second init: {other:?}"),
    }

    let pool = Mempool::new(&eal, "test_pool", POOL, 64).expect("mempool");
    assert_eq!(pool.available(), POOL);

    mbuf_is_a_frame(&pool);
    assert_eq!(pool.available(), POOL, "mbuf scenario leaked");

    ring_forwarding(&eal, &pool);
    assert_eq!(pool.available(), POOL, "ring scenario leaked");

    null_forwarding(&eal, &pool);
    assert_eq!(pool.available(), POOL, "null scenario leaked");

    worker_thread(&eal, &pool);
    assert_eq!(pool.available(), POOL, "worker thread scenario leaked");

    // Unknown devices and taken queues are errors, not panics.
    assert!(matches!(
        EthDev::open(&eal, "net_nonexistent0", &EthDevConfig::default(), &pool),
        Err(DpdkError::NoSuchPort(_))
    ));
}

fn mbuf_is_a_frame(pool: &Mempool) {
    let mut m = pool.mbuf_from_bytes(&[1, 2, 3, 4]).expect("mbuf");
    assert_eq!(m.headroom(), meshplane::frame::HEADROOM);
    assert_eq!(m.data(), &[1, 2, 3, 4]);
    assert!(m.prepend(2));
    m.data_mut()[..2].copy_from_slice(&[9, 9]);
    assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
    assert_eq!(m.pkt_len(), 6);
    assert!(m.adj(3));
    assert!(m.trim(1));
    assert_eq!(m.data(), &[2, 3]);
    assert!(m.append(1));
    assert_eq!(m.len(), 3);
    assert!(!m.adj(4));
    assert!(!m.trim(4));
    assert!(!m.prepend(10_000));
    assert!(!m.append(10_000));
    assert_eq!(m.len(), 3);
    assert_eq!(
        m.headroom() + m.len() + m.tailroom(),
        pool.data_room() as usize
    );
    assert!(pool.mbuf_from_bytes(&vec![0u8; 4000]).is_err());

    let mut v = Vec::new();
    pool.alloc_bulk(&mut v, 100).expect("alloc_bulk");
    assert_eq!(pool.in_use(), 101);
    drop(v);
    drop(m);
    assert_eq!(pool.in_use(), 0);
}

/// Each `net_ring` vdev created without arguments is a loopback: what is
/// sent on queue 0 comes back on queue 0. Inject on ring0, forward
/// ring0 -> ring1 through `DpdkPort`, read back from ring1.
fn ring_forwarding(eal: &Eal, pool: &Mempool) {
    let cfg = EthDevConfig::default();
    let dev0 = EthDev::open(eal, "net_ring0", &cfg, pool).expect("open ring0");
    let dev1 = EthDev::open(eal, "net_ring1", &cfg, pool).expect("open ring1");
    assert!(dev0.link().expect("link").up);
    let _ = dev0.mac().expect("mac");
    let mut p0 = dev0.queue(0).expect("queue");
    let mut p1 = dev1.queue(0).expect("queue");
    assert!(matches!(dev0.queue(0), Err(DpdkError::QueueTaken { .. })));
    assert!(matches!(dev0.queue(1), Err(DpdkError::BadQueue { .. })));

    const N: u32 = 1000;
    let mut batch: Batch<_> = Batch::new();
    let mut injected = 0;
    while injected < N {
        while batch.room() > 0 && injected + (batch.len() as u32) < N {
            let i = injected + batch.len() as u32;
            let len = 60 + (i as usize * 13) % 1400;
            batch
                .push(pool.mbuf_from_bytes(&frame_bytes(i, len)).expect("mbuf"))
                .expect("room");
        }
        let n = batch.len();
        let sent = p0.tx_burst(&mut batch);
        assert_eq!(sent, n, "ring has room for the whole burst");
        injected += sent as u32;
    }
    assert_eq!(pool.in_use(), N);

    // Forward ring0 -> ring1.
    let mut forwarded = 0u32;
    while forwarded < N {
        let got = p0.rx_burst(&mut batch);
        assert!(got > 0, "ring0 ran dry after {forwarded}");
        assert!(got <= BURST);
        while !batch.is_empty() {
            forwarded += p1.tx_burst(&mut batch) as u32;
        }
    }
    assert_eq!(p0.rx_burst(&mut batch), 0);

    // Read back: same frames, same order, same bytes.
    let mut i = 0u32;
    loop {
        if p1.rx_burst(&mut batch) == 0 {
            break;
        }
        for f in batch.frames() {
            let len = 60 + (i as usize * 13) % 1400;
            assert_eq!(f.data(), frame_bytes(i, len).as_slice(), "frame {i}");
            i += 1;
        }
        batch.clear();
    }
    assert_eq!(i, N);

    let s0 = dev0.stats().expect("stats");
    let s1 = dev1.stats().expect("stats");
    assert_eq!(s0.ipackets, N as u64);
    assert_eq!(s1.opackets, N as u64);
    assert_eq!(s1.ipackets, N as u64);
    assert_eq!(s0.imissed + s0.ierrors + s0.rx_nombuf, 0);

    // Stop needs the queues back; a stopped port hands out none; frames
    // queued in the ring wait for the restart.
    let mut dev1 = dev1;
    assert!(matches!(dev1.stop(), Err(DpdkError::Config(_))));
    drop(p1);
    let inject = pool.mbuf_from_bytes(&frame_bytes(7, 64)).expect("mbuf");
    let mut b1 = dev1.queue(0).expect("queue");
    batch.push(inject).expect("room");
    assert_eq!(b1.tx_burst(&mut batch), 1);
    drop(b1);
    dev1.stop().expect("stop");
    assert!(!dev1.is_started());
    assert!(!dev1.link().expect("link").up);
    assert!(matches!(dev1.queue(0), Err(DpdkError::Config(_))));
    dev1.start().expect("start");
    assert!(dev1.link().expect("link").up);
    let mut p1 = dev1.queue(0).expect("queue after restart");
    assert_eq!(p1.rx_burst(&mut batch), 1);
    assert_eq!(batch.frames()[0].data(), frame_bytes(7, 64).as_slice());
    batch.clear();

    // A port with a live queue refuses to close now; it closes when its
    // last queue goes.
    assert!(matches!(dev0.close(), Err(DpdkError::Config(_))));
    drop(p0);
    drop(p1);
    dev1.close().expect("close ring1");
}

/// A thread spawned outside EAL registers as an lcore (getting a mempool
/// cache), and mbufs move between threads (`Mbuf: Send`).
fn worker_thread(eal: &Eal, pool: &Mempool) {
    assert_eq!(eal.lcore_id(), Some(eal.main_lcore()));
    let (eal2, pool2) = (*eal, pool.clone());
    let mbufs = std::thread::spawn(move || {
        assert_eq!(eal2.lcore_id(), None, "a plain thread has no lcore");
        let id = eal2.register_thread().expect("register");
        assert_ne!(id, eal2.main_lcore());
        assert_eq!(eal2.register_thread().expect("again"), id);
        let mut v = Vec::new();
        pool2.alloc_bulk(&mut v, 64).expect("alloc");
        for (i, m) in v.iter_mut().enumerate() {
            assert!(m.append(1));
            m.data_mut()[0] = i as u8;
        }
        // Freed here, through this lcore's cache.
        v.truncate(32);
        eal2.unregister_thread();
        assert_eq!(eal2.lcore_id(), None);
        v
    })
    .join()
    .expect("thread");
    assert_eq!(mbufs.len(), 32);
    assert!(mbufs.iter().enumerate().all(|(i, m)| m.data() == [i as u8]));
    drop(mbufs);
}

/// `net_null` RX allocates 64-byte frames from the queue's pool; TX frees
/// what it is given. Forward null0 -> null1.
fn null_forwarding(eal: &Eal, pool: &Mempool) {
    let cfg = EthDevConfig::default();
    let dev0 = EthDev::open(eal, "net_null0", &cfg, pool).expect("open null0");
    let dev1 = EthDev::open(eal, "net_null1", &cfg, pool).expect("open null1");
    let mut p0 = dev0.queue(0).expect("queue");
    let mut p1 = dev1.queue(0).expect("queue");
    let mut batch = Batch::new();
    const N: u64 = 100_000;
    let mut forwarded = 0u64;
    while forwarded < N {
        let got = p0.rx_burst(&mut batch);
        assert_eq!(got, BURST);
        for f in batch.frames_mut() {
            assert_eq!(f.len(), 64);
            // Touch the frame as a stage would.
            f.data_mut()[0] ^= 1;
        }
        while !batch.is_empty() {
            forwarded += p1.tx_burst(&mut batch) as u64;
        }
    }
    let s0 = dev0.stats().expect("stats");
    let s1 = dev1.stats().expect("stats");
    assert_eq!(s0.ipackets, forwarded);
    assert_eq!(s1.opackets, forwarded);
    assert_eq!(s0.rx_nombuf, 0);
}
