//! DPDK's `net_af_xdp` over a veth pair (copy mode, no NIC): UDP datagrams
//! a kernel socket sends into one end arrive through DPDK on the other,
//! are reflected (addresses and ports swapped, in place) and come back to
//! the socket. Needs root for the veth pair; skipped with a message where
//! it cannot be created. One test: EAL initialises once per process.
//! Every mbuf the test handled comes back, up to what DPDK 22.11's af_xdp
//! keeps at close: its fill ring and the not yet reaped TX completions.
#![cfg(feature = "dpdk")]

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use meshplane::frame::{Batch, Frame, BURST};
use meshplane::io::dpdk::{EalBuilder, EthDev, EthDevConfig, Mbuf, Mempool};
use meshplane::io::Port;

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The veth pair, deleted on drop.
struct Veth(String);

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.0]);
    }
}

fn mac_of(iface: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Swaps Ethernet addresses, IPv4 addresses and UDP ports of an
/// IPv4/UDP frame (the IPv4 checksum is unchanged by the swap). False if
/// the frame is not IPv4/UDP.
fn reflect(f: &mut Mbuf) -> bool {
    let d = f.data_mut();
    if d.len() < 42 || d[12..14] != [0x08, 0x00] || d[14] >> 4 != 4 || d[23] != 17 {
        return false;
    }
    let ihl = usize::from(d[14] & 0x0f) * 4;
    if d.len() < 14 + ihl + 8 {
        return false;
    }
    for i in 0..6 {
        d.swap(i, 6 + i);
    }
    for i in 0..4 {
        d.swap(26 + i, 30 + i);
    }
    let u = 14 + ihl;
    d.swap(u, u + 2);
    d.swap(u + 1, u + 3);
    // The sender's veth offloads the UDP checksum, so the frame carries
    // only a partial one; 0 means "no checksum" for UDP over IPv4.
    d[u + 6] = 0;
    d[u + 7] = 0;
    true
}

#[test]
fn af_xdp_on_veth_receives_and_sends() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pid = std::process::id();
    let (a, b) = (
        format!("mpx{}a", pid % 100_000),
        format!("mpx{}b", pid % 100_000),
    );
    if !ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]) {
        eprintln!("skipped: cannot create a veth pair here (needs root and iproute2)");
        return;
    }
    let _veth = Veth(a.clone());
    // RFC 2544 benchmarking space: unlikely to meet a real network.
    let k = (pid % 250) as u8 + 1;
    let ip_b = Ipv4Addr::new(198, 18, k, 2);
    let ip_a = Ipv4Addr::new(198, 18, k, 1);
    let mac_a = mac_of(&a).expect("mac");
    assert!(ip(&["link", "set", &a, "up"]));
    assert!(ip(&["link", "set", &b, "up"]));
    assert!(ip(&["addr", "add", &format!("{ip_b}/24"), "dev", &b]));
    // The DPDK side answers no ARP: tell the kernel where ip_a lives.
    assert!(ip(&[
        "neigh",
        "replace",
        &ip_a.to_string(),
        "lladdr",
        &mac_a,
        "dev",
        &b,
        "nud",
        "permanent"
    ]));

    let eal = EalBuilder::new()
        .file_prefix(format!("mp-test-xdp-{pid}"))
        .log_level("notice")
        .args(["--no-telemetry"])
        .init()
        .expect("EAL");
    let pool = Mempool::new(&eal, "xdp_pool", 8191, 64).expect("pool");
    let spec = format!("net_af_xdp_t0,iface={a},start_queue=0,queue_count=1");
    let dev = match EthDev::hotplug(&eal, &spec, &EthDevConfig::default(), &pool) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: net_af_xdp unavailable here: {e}");
            return;
        }
    };
    let mut port = dev.queue(0).expect("queue");
    // The PMD keeps its fill ring stocked from the pool, and DPDK 22.11's
    // af_xdp does not hand those back on close: they are its, not leaks.
    let pmd_held = pool.in_use();
    assert!(pmd_held <= 4096, "{pmd_held}");

    let sock = UdpSocket::bind(SocketAddrV4::new(ip_b, 0)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    const N: usize = 50;
    let mut batch = Batch::new();
    let mut reflected = 0;
    let mut echoes = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    let mut buf = [0u8; 2048];
    while echoes.len() < N && Instant::now() < deadline {
        if sent < N {
            let msg = format!("meshplane af_xdp {sent:04}");
            sock.send_to(msg.as_bytes(), SocketAddrV4::new(ip_a, 9999))
                .expect("send");
            sent += 1;
        }
        // DPDK side: reflect our datagrams, drop everything else (IPv6 ND...).
        for _ in 0..100 {
            port.rx_burst(&mut batch);
        }
        let mut keep = Batch::new();
        while let Some((mut f, _)) = batch.pop() {
            if reflect(&mut f) {
                let _ = keep.push(f);
            }
        }
        reflected += keep.len();
        while !keep.is_empty() {
            if port.tx_burst(&mut keep) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if from.ip() == std::net::IpAddr::V4(ip_a) {
                echoes.push(buf[..n].to_vec());
            }
            if echoes.len() >= sent {
                break;
            }
        }
    }
    assert_eq!(reflected, N, "frames received through DPDK");
    assert_eq!(echoes.len(), N, "frames sent back through DPDK");
    let mut expect: Vec<Vec<u8>> = (0..N)
        .map(|i| format!("meshplane af_xdp {i:04}").into_bytes())
        .collect();
    echoes.sort();
    expect.sort();
    assert_eq!(echoes, expect);

    let s = dev.stats().expect("stats");
    assert!(s.ipackets >= N as u64 && s.opackets == N as u64, "{s:?}");
    drop(port);
    dev.close().expect("close");
    // Sent mbufs return when the PMD reaps its completion ring, lazily on
    // a later TX; those of the last burst may still sit there at close.
    let left = pool.in_use() - pmd_held;
    assert!(left <= BURST as u32, "{left} mbufs leaked");
}
