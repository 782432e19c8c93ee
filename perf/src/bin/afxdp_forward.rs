//! The AF_XDP backend forwarding on veth against the simplest AF_XDP
//! forward loop, in one run.
//!
//! Two veth pairs in this namespace: a generator (an AF_XDP socket of
//! its own, on its own core) sends 64-byte MPLS frames labelled 1002 into
//! `gsl-a` of a satellite node; the node forwards them out of `gsl-b`,
//! whose peer drops them in the kernel. On the node's core, alternating
//! rounds of:
//!
//! - `raw`: descriptors move from gsl-a's RX ring to gsl-b's TX ring (one
//!   shared UMEM), no frames, no stages, no header touched: the ceiling;
//! - `transit`: the production loop, `Worker::poll` over the same sockets
//!   (frames, label swap 1002 -> 1003, TTL, MACs, counters, latency).
//!
//! Prints the forwarded Mpps of each (medians), the ratio transit / raw
//! (target >= 0.9) and what the generator offered. On veth both loops are
//! bound by the kernel's copies (copy mode): this is a functional figure,
//! not a line-rate one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use meshplane::config::NodeConfig;
use meshplane::frame::{Batch, Frame};
use meshplane::io::afxdp::{AfXdpNode, AfXdpPort};
use meshplane::io::Port;
use meshplane::tables::Tables;
use meshplane::worker::Worker;
use meshplane_perf::link_afxdp::Veths;

#[derive(Parser)]
#[command(about = "AF_XDP transit on veth vs the simplest AF_XDP forward loop")]
struct Args {
    /// Seconds per measurement round.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Rounds per loop (alternating raw/transit); the median counts.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Core of the node's worker (default: the second core of this process).
    #[arg(long)]
    core: Option<usize>,
    /// Core of the generator (default: the first core of this process).
    #[arg(long)]
    gen_core: Option<usize>,
    /// Frame length without FCS (60 = a 64-byte frame on the wire).
    #[arg(long, default_value_t = 60)]
    len: usize,
}

const LABEL_IN: u32 = 1002;

/// The satellite under test; `{A}`/`{B}` are the interfaces.
const SAT: &str = r#"
[node]
name = "bench-afxdp"
role = "satellite"
[io]
backend = "afxdp"
[[ports]]
name = "gsl-a"
mac = "02:00:00:00:01:01"
iface = "{A}"
mode = "copy"
[[ports]]
name = "gsl-b"
mac = "02:00:00:00:01:02"
iface = "{B}"
mode = "copy"
[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "gsl-b"
next_hop_mac = "02:00:00:00:0b:02"
"#;

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len.max(60)];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0x01, 0x01]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0x0a, 0x02]);
    f[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    f[14..18].copy_from_slice(&((LABEL_IN << 12) | (1 << 8) | 64).to_be_bytes());
    let ip = &mut f[18..38];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len.max(60) - 18) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[10, 1, 0, 1]);
    ip[16..20].copy_from_slice(&[10, 2, 0, 1]);
    f
}

fn pin(core: Option<usize>) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(core_affinity::CoreId { id: c }) {
            eprintln!("warning: could not pin to core {c}");
        }
    }
}

/// Sends `frame` as fast as the socket takes it until `stop`.
fn generate(mut port: AfXdpPort, frame: Vec<u8>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut out = Batch::new();
    let mut rx = Batch::new();
    while !stop.load(Ordering::Relaxed) {
        while out.room() > 0 {
            let Some(mut f) = port.alloc() else { break };
            if !f.append(frame.len()) {
                break;
            }
            f.data_mut().copy_from_slice(&frame);
            let _ = out.push(f);
        }
        let n = port.tx_burst(&mut out);
        sent.fetch_add(n as u64, Ordering::Relaxed);
        // Reaps completions and kicks the TX ring; nothing arrives here.
        port.rx_burst(&mut rx);
        rx.clear();
    }
}

#[derive(Clone, Copy, Default)]
struct Round {
    forwarded: u64,
    offered: u64,
    secs: f64,
}

impl Round {
    fn mpps(&self) -> f64 {
        self.forwarded as f64 / self.secs / 1e6
    }
    fn offered_mpps(&self) -> f64 {
        self.offered as f64 / self.secs / 1e6
    }
}

fn median(mut v: Vec<Round>) -> Round {
    v.sort_by(|a, b| a.mpps().total_cmp(&b.mpps()));
    v[v.len() / 2]
}

fn raw_round(ports: &mut [AfXdpPort], dur: Duration, sent: &AtomicU64) -> Round {
    let (a, b) = ports.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    let s0 = sent.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut n = 0u64;
    let mut polls = 0u32;
    loop {
        n += a.forward_raw(b) as u64;
        polls = polls.wrapping_add(1);
        if polls & 255 == 0 && t.elapsed() >= dur {
            break;
        }
    }
    Round {
        forwarded: n,
        offered: sent.load(Ordering::Relaxed) - s0,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn transit_round(
    w: &mut Worker<AfXdpPort>,
    tables: &Tables,
    dur: Duration,
    sent: &AtomicU64,
) -> Round {
    let before = w.stats.ports[1].tx_packets;
    let s0 = sent.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut polls = 0u32;
    loop {
        w.poll(tables);
        polls = polls.wrapping_add(1);
        if polls & 255 == 0 && t.elapsed() >= dur {
            break;
        }
    }
    Round {
        forwarded: w.stats.ports[1].tx_packets - before,
        offered: sent.load(Ordering::Relaxed) - s0,
        secs: t.elapsed().as_secs_f64(),
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let a = Args::parse();
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let gen_core = a.gen_core.or(cores.first().copied());
    let core = a.core.or(cores.get(1).copied()).or(gen_core);

    let pid = std::process::id() % 100_000;
    let (gen_a, gen_b) = (format!("mpb{pid}ga"), format!("mpb{pid}gb"));
    let (out_a, out_b) = (format!("mpb{pid}oa"), format!("mpb{pid}ob"));
    let mut guard = Veths::default();
    guard.pair(&gen_a, &gen_b)?;
    guard.pair(&out_a, &out_b)?;

    let sat = NodeConfig::parse(&SAT.replace("{A}", &gen_b).replace("{B}", &out_a), "bench")?;
    let tables = Tables::from_config(&sat, 1)?;
    let mut node = AfXdpNode::open(&sat, 1)?.into_workers();
    let mut ports = node.pop().context("one worker")?;
    let gen_cfg = NodeConfig::parse(
        &format!(
            "[node]\nname = \"gen\"\nrole = \"satellite\"\n[[ports]]\nname = \"g\"\nmac = \"02:00:00:00:0a:02\"\niface = \"{gen_a}\"\nmode = \"copy\"\n"
        ),
        "gen",
    )?;
    let gen_port = AfXdpNode::open(&gen_cfg, 1)?
        .into_workers()
        .pop()
        .and_then(|mut w| w.pop())
        .context("generator socket")?;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let g = {
        let (stop, sent, f) = (stop.clone(), sent.clone(), frame(a.len));
        std::thread::Builder::new()
            .name("generator".into())
            .spawn(move || {
                pin(gen_core);
                generate(gen_port, f, stop, sent)
            })?
    };
    pin(core);
    let dur = Duration::from_secs_f64(a.seconds);
    // Warm up: sockets, caches, the generator reaching its pace.
    raw_round(&mut ports, dur / 2, &sent);
    let mut raw = Vec::new();
    let mut transit = Vec::new();
    let mut w = Worker::new(ports);
    for _ in 0..a.rounds.max(1) {
        let mut p = w.into_ports();
        raw.push(raw_round(&mut p, dur, &sent));
        w = Worker::new(p);
        transit.push(transit_round(&mut w, &tables, dur, &sent));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = g.join();
    let drops = w.stats.drops.total();
    let ports = w.into_ports();
    let st = ports[0].stats();
    let (raw, transit) = (median(raw), median(transit));
    println!(
        "AF_XDP on veth ({} mode, XDP {}), {} B frames + FCS, worker core {:?}, generator core {:?}, median of {} x {:.1} s",
        ports[0].mode(),
        ports[0].xdp_mode(),
        a.len.max(60),
        core,
        gen_core,
        a.rounds.max(1),
        a.seconds
    );
    println!(
        "  raw RX->TX (no frames, no stages)  {:>7.3} Mpps   (generator offered {:.3} Mpps)",
        raw.mpps(),
        raw.offered_mpps()
    );
    println!(
        "  transit (Worker::poll, label swap) {:>7.3} Mpps   (generator offered {:.3} Mpps)",
        transit.mpps(),
        transit.offered_mpps()
    );
    println!(
        "  ratio transit / raw                {:>7.3}x  (target >= 0.9x)",
        transit.mpps() / raw.mpps()
    );
    println!(
        "  gsl-a socket: rx_dropped {} rx_ring_full {} fill_empty {}; stage drops {drops}",
        st.rx_dropped, st.rx_ring_full, st.rx_fill_ring_empty_descs
    );
    drop(ports);
    drop(guard);
    Ok(())
}
