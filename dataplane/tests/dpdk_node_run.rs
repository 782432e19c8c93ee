//! A node run over DPDK exactly as its configuration describes it:
//! `[io] backend = "dpdk"` with `eal_args`, and each port naming its DPDK
//! device (`net_pcap` here: in from one file, out to another). The
//! satellite of the embedded chain forwards gateway A's output; what it
//! writes must equal the heap backend's output byte for byte, and every
//! mbuf must come back. One test: EAL initialises once per process.
#![cfg(feature = "dpdk")]

use std::path::Path;

use meshplane::chain::{default_chain, run_chain};
use meshplane::config::NodeConfig;
use meshplane::gen::{generate, FrameSize, GenSpec};
use meshplane::io::dpdk::{EalBuilder, Mempool, NodePorts};
use meshplane::io::pcap::{read_file, CaptureWriter};
use meshplane::tables::Tables;
use meshplane::worker::Worker;

#[test]
fn satellite_runs_from_its_config_over_net_pcap() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dpdk-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");

    // Gateway A's output (heap backend) is the satellite's input.
    let hops = default_chain().expect("embedded chain");
    let input = generate(&GenSpec {
        count: 2000,
        size: FrameSize::Imix,
        flows: 32,
        ..GenSpec::default()
    })
    .expect("traffic");
    let heap = run_chain(&hops, input, 1).expect("heap chain");
    let sat_in = dir.join("gsl-a-in.pcap");
    let mut w = CaptureWriter::create(&sat_in).expect("create");
    for p in &heap.outputs[0] {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");

    let gsl_b_out = dir.join("gsl-b-out.pcap");
    let config = format!(
        r#"
[node]
name = "sat-1"
role = "satellite"

[io]
backend = "dpdk"
eal_args = ["--no-telemetry", "--log-level=notice"]

[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
dpdk = "net_pcap0,rx_pcap={inp},tx_pcap={dev_null}"

[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
dpdk = "net_pcap1,rx_pcap={empty},tx_pcap={out}"

[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"

[[lfib]]
label = 2001
action = "swap"
out_label = 1001
port = "gsl-a"
next_hop_mac = "02:00:00:00:0a:02"
"#,
        inp = sat_in.display(),
        dev_null = dir.join("gsl-a-out.pcap").display(),
        empty = {
            let e = dir.join("empty.pcap");
            CaptureWriter::create(&e)
                .expect("empty")
                .finish()
                .expect("finish");
            e.display().to_string()
        },
        out = gsl_b_out.display(),
    );
    let cfg = NodeConfig::parse(&config, "<test sat-1>").expect("config");
    assert_eq!(cfg.io.backend, "dpdk");

    let eal = EalBuilder::for_node(&cfg, true)
        .file_prefix(format!("mp-test-node-{}", std::process::id()))
        .init()
        .expect("EAL from the node's config");
    let pool = Mempool::new(&eal, "node_pool", 4095, 128).expect("pool");
    let ports = NodePorts::open(&eal, &cfg, 1, &pool).expect("open the node's ports");
    let tables = Tables::from_config(&cfg, 1).expect("tables");

    let mut worker = Worker::new(ports.queues(0).expect("queues"));
    let mut idle = 0;
    while idle < 100 {
        if worker.poll(&tables) == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
    }
    let n = heap.outputs[0].len() as u64;
    assert_eq!(worker.stats.ports[0].rx_packets, n);
    assert_eq!(worker.stats.ports[1].tx_packets, n);
    assert_eq!(worker.stats.drops.total(), 0);
    let dev_stats = ports.devices()[1].stats().expect("stats");
    assert_eq!(dev_stats.opackets, n);
    drop(worker);
    ports.close().expect("close flushes the captures");
    assert_eq!(pool.available(), pool.size(), "mbufs leaked");

    let (out, _) = read_file(&gsl_b_out).expect("read output");
    let got: Vec<&[u8]> = out.iter().map(|p| p.data.as_slice()).collect();
    let want: Vec<&[u8]> = heap.outputs[1].iter().map(|p| p.data.as_slice()).collect();
    assert_eq!(
        got, want,
        "DPDK satellite output differs from the heap backend's"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
