//! The gateway A -> satellite -> gateway B chain over real DPDK: each hop
//! receives its input through `net_pcap` and runs the same worker
//! and stages over mbufs. Every hop's output must be byte-identical to the
//! heap/pcap backend's, and every mbuf must come back. One test: EAL
//! initialises once per process.
#![cfg(feature = "dpdk")]

use meshplane::chain::{default_chain, run_chain, verify_inner};
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::dpdk::{replay_dpdk, EalBuilder};
use meshplane::io::pcap::CapturedPacket;
use meshplane::replay::{replay_to_memory, ReplayOptions};

fn bytes(p: &[CapturedPacket]) -> Vec<&[u8]> {
    p.iter().map(|c| c.data.as_slice()).collect()
}

#[test]
fn chain_over_net_pcap_matches_heap_backend() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();

    let hops = default_chain().expect("embedded chain");
    let input = generate(&GenSpec {
        count: 3000,
        size: FrameSize::Imix,
        flows: 64,
        ..GenSpec::default()
    })
    .expect("traffic");
    let heap = run_chain(&hops, input.clone(), 1).expect("heap chain");

    let eal = EalBuilder::new()
        .file_prefix(format!("mp-test-chain-{}", std::process::id()))
        .log_level("notice")
        .args(["--no-telemetry"])
        .init()
        .expect("EAL");

    let mut current = input.clone();
    for (i, hop) in hops.iter().enumerate() {
        let opts = ReplayOptions {
            loops: 1,
            rx_port: hop.rx_port,
        };
        let mut per_port: Vec<Vec<CapturedPacket>> = vec![Vec::new(); hop.node.ports.len()];
        let report = replay_dpdk(&eal, &hop.node, &current, &opts, |p, ts, d| {
            per_port[p].push(CapturedPacket {
                ts,
                data: d.to_vec(),
            });
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|e| panic!("hop {}: {e}", hop.node.name));
        assert_eq!(
            report.packets_in(),
            current.len() as u64,
            "{}",
            hop.node.name
        );
        let out = std::mem::take(&mut per_port[hop.tx_port]);
        assert_eq!(
            bytes(&out),
            bytes(&heap.outputs[i]),
            "hop {}: DPDK output differs from the heap backend's",
            hop.node.name
        );
        assert!(
            per_port.iter().all(Vec::is_empty),
            "unexpected extra output"
        );
        current = out;
    }
    // Both gateways forward the inner packet: TTL less 2.
    let (ok, bad) = verify_inner(&input, 1, 2, &current);
    assert_eq!((ok, bad), (input.len() as u64, 0));

    // A looped replay (net_pcap infinite_rx, bounded by the frame count)
    // matches too: ESP sequence numbers keep counting across loops.
    let hop = &hops[0];
    let opts = ReplayOptions {
        loops: 3,
        rx_port: hop.rx_port,
    };
    let (_, heap_out) =
        replay_to_memory(&hop.node, input[..500].to_vec().into(), &opts).expect("heap replay");
    let mut dpdk_out = Vec::new();
    let report = replay_dpdk(&eal, &hop.node, &input[..500], &opts, |p, _, d| {
        if p == hop.tx_port {
            dpdk_out.push(d.to_vec());
        }
        Ok::<(), std::convert::Infallible>(())
    })
    .expect("looped replay");
    assert_eq!(report.packets_in(), 1500);
    assert_eq!(dpdk_out.len(), 1500);
    assert_eq!(
        dpdk_out.iter().map(Vec::as_slice).collect::<Vec<_>>(),
        bytes(&heap_out[hop.tx_port])
    );
}
