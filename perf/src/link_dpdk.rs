//! DPDK backends for the harness, over virtual devices (one EAL per process):
//!
//! - `dpdk-ring`: the tester sends into `net_ring0` (a loopback ring: what
//!   is sent on it is received on it, so the DUT receives the tester's
//!   frames) and the DUT sends into `net_ring1`, which the tester drains.
//! - `dpdk-null`: as `dpdk-ring`, but the DUT sends into `net_null0`, whose
//!   TX frees the mbufs (the cheapest possible TX).
//! - `dpdk-pcap`: the DUT receives from `net_pcap`, which replays a capture
//!   of the scenario's input frames from memory without end
//!   (`infinite_rx=1`), and sends into `net_null0`. The device is the
//!   generator: no pacing, the offered count is what the DUT received.

use crate::link::{Cursor, Link, LinkRole};
use crate::scenario::Prepared;
use anyhow::{bail, Context, Result};
use meshplane::frame::Batch;
use meshplane::io::dpdk::{DpdkPort, Eal, EalBuilder, EthDev, EthDevConfig, Mbuf, Mempool};
use meshplane::io::pcap::CaptureWriter;
use meshplane::io::Port;
use std::path::PathBuf;

/// Which DPDK backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DpdkKind {
    /// `net_ring` in, `net_ring` out.
    Ring,
    /// `net_ring` in, `net_null` out.
    Null,
    /// `net_pcap` (infinite replay) in, `net_null` out.
    Pcap,
}

impl DpdkKind {
    /// Backend name in reports.
    pub fn name(self) -> &'static str {
        match self {
            DpdkKind::Ring => "dpdk-ring",
            DpdkKind::Null => "dpdk-null",
            DpdkKind::Pcap => "dpdk-pcap",
        }
    }
}

/// A DUT port on a DPDK queue, with the tester behind it.
pub struct DpdkLink {
    port: DpdkPort,
    role: LinkRole,
    pool: Mempool,
    /// The port is a loopback ring the tester must empty after each TX.
    drain: bool,
    self_fed: bool,
    received: u64,
    scratch: Batch<Mbuf>,
}

impl Port for DpdkLink {
    type Frame = Mbuf;

    #[inline]
    fn rx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        if self.role == LinkRole::Sink {
            return 0;
        }
        self.port.rx_burst(batch)
    }

    #[inline]
    fn tx_burst(&mut self, batch: &mut Batch<Mbuf>) -> usize {
        let sent = self.port.tx_burst(batch);
        if self.role == LinkRole::Sink {
            self.received += sent as u64;
            if self.drain {
                while self.port.rx_burst(&mut self.scratch) > 0 {
                    self.scratch.clear();
                }
            }
        }
        sent
    }
}

impl Link for DpdkLink {
    #[inline]
    fn offer(&mut self, src: &mut Cursor<'_>, n: usize) -> usize {
        if self.self_fed {
            return 0;
        }
        let mut done = 0;
        while done < n {
            while self.scratch.room() > 0 && done + self.scratch.len() < n {
                let Some(bytes) = src.peek() else { break };
                let Ok(m) = self.pool.mbuf_from_bytes(bytes) else {
                    break;
                };
                let _ = self.scratch.push(m);
                src.advance();
            }
            let want = self.scratch.len();
            if want == 0 {
                break;
            }
            // The loopback ring: what the tester sends here, the DUT receives.
            let sent = self.port.tx_burst(&mut self.scratch);
            done += sent;
            // Refused frames are freed; the cursor has moved past them, so
            // a full ring skips frames of the pass (ESP sequence numbers
            // then have gaps, which anti-replay accepts).
            self.scratch.clear();
            if sent < want {
                break;
            }
        }
        done
    }

    fn received(&self) -> u64 {
        self.received
    }

    fn rx_pending(&self) -> usize {
        0
    }

    fn rx_room(&self) -> Option<usize> {
        None
    }

    fn self_fed(&self) -> bool {
        self.self_fed
    }
}

/// A hot-plugged capture device and the file it replays.
pub type Hotplugged = (EthDev, PathBuf);

/// The DPDK side of a run: EAL, one mbuf pool, the fixed devices.
pub struct DpdkBench {
    eal: Eal,
    pool: Mempool,
    ring_in: EthDev,
    ring_out: EthDev,
    null_out: EthDev,
    pcaps: u32,
}

/// Why `kind` cannot run `prep`, if it cannot.
pub fn unsupported(prep: &Prepared, kind: DpdkKind) -> Option<String> {
    if prep.hops.len() != 1 {
        return Some("the DPDK backends run one node; the chain runs over memory".into());
    }
    if kind == DpdkKind::Pcap && prep.fresh_sa_per_pass {
        return Some(
            "net_pcap replays the same encrypted frames without end, which the anti-replay \
             window rightly drops from the second pass on; egress runs over dpdk-ring and dpdk-null"
                .into(),
        );
    }
    None
}

impl DpdkBench {
    /// Initialises EAL (once per process) with the harness's devices.
    pub fn init(core: Option<usize>, no_huge: bool) -> Result<DpdkBench> {
        let mut b = EalBuilder::new()
            .file_prefix(format!("mp-bench-{}", std::process::id()))
            .vdev("net_ring0")
            .vdev("net_ring1")
            .vdev("net_null0")
            .log_level("notice")
            .args(["--no-telemetry"]);
        if let Some(c) = core {
            b = b.cores(&[c]);
        }
        if no_huge {
            b = b.memory(meshplane::io::dpdk::MemoryMode::NoHuge);
        }
        let eal = b.init().context("EAL")?;
        let pool = Mempool::new(&eal, "bench_pool", 16383, 256)?;
        let cfg = EthDevConfig::default();
        let ring_in = EthDev::open(&eal, "net_ring0", &cfg, &pool)?;
        let ring_out = EthDev::open(&eal, "net_ring1", &cfg, &pool)?;
        let null_out = EthDev::open(&eal, "net_null0", &cfg, &pool)?;
        Ok(DpdkBench {
            eal,
            pool,
            ring_in,
            ring_out,
            null_out,
            pcaps: 0,
        })
    }

    /// The ports of `prep`'s node over `kind`. Returns the links and, for
    /// `dpdk-pcap`, the hot-plugged device and its capture file (keep both
    /// until the links are dropped, then pass them to `release`).
    pub fn links(
        &mut self,
        prep: &Prepared,
        kind: DpdkKind,
    ) -> Result<(Vec<Vec<DpdkLink>>, Option<Hotplugged>)> {
        if prep.hops.len() != 1 {
            bail!(
                "{}: the DPDK backends run one node; run the chain over the memory backend",
                kind.name()
            );
        }
        let hop = &prep.hops[0];
        if hop.node.ports.len() != 2 || hop.rx_port == hop.tx_port {
            bail!(
                "node {}: the harness needs two ports, one in and one out",
                hop.node.name
            );
        }
        let mut extra = None;
        let rx_dev = match kind {
            DpdkKind::Ring | DpdkKind::Null => &self.ring_in,
            DpdkKind::Pcap => {
                let path = std::env::temp_dir().join(format!(
                    "meshplane-bench-{}-{}.pcap",
                    std::process::id(),
                    self.pcaps
                ));
                let mut w = CaptureWriter::create(&path)?;
                for i in 0..prep.input.len() {
                    w.write(
                        std::time::Duration::from_micros(i as u64),
                        prep.input.frame(i),
                    )?;
                }
                w.finish()?;
                let spec = format!(
                    "net_pcap_bench{},rx_pcap={},infinite_rx=1",
                    self.pcaps,
                    path.display()
                );
                self.pcaps += 1;
                let dev = EthDev::hotplug(&self.eal, &spec, &EthDevConfig::default(), &self.pool)
                    .with_context(|| format!("hot-plugging {spec}"))?;
                extra = Some((dev, path));
                extra.as_ref().map(|(d, _)| d).context("pcap device")?
            }
        };
        let (tx_dev, drain) = match kind {
            DpdkKind::Ring => (&self.ring_out, true),
            DpdkKind::Null | DpdkKind::Pcap => (&self.null_out, false),
        };
        let mk = |dev: &EthDev, role, drain, self_fed| -> Result<DpdkLink> {
            Ok(DpdkLink {
                port: dev.queue(0)?,
                role,
                pool: self.pool.clone(),
                drain,
                self_fed,
                received: 0,
                scratch: Batch::new(),
            })
        };
        let rx = mk(rx_dev, LinkRole::Source, false, kind == DpdkKind::Pcap)?;
        let tx = mk(tx_dev, LinkRole::Sink, drain, false)?;
        let mut ports = vec![rx, tx];
        if hop.rx_port == 1 {
            ports.swap(0, 1);
        }
        // Nothing is left in the rings from an earlier scenario (net_null
        // and a capture replayed without end are never empty: left alone).
        let rings = ports
            .iter_mut()
            .filter(|p| p.drain || (p.role == LinkRole::Source && !p.self_fed));
        for p in rings {
            let mut b = Batch::new();
            while p.port.rx_burst(&mut b) > 0 {
                b.clear();
            }
        }
        Ok((vec![ports], extra))
    }

    /// Mbufs of the pool not in the pool (should be 0 between scenarios).
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use()
    }

    /// Removes a hot-plugged capture device and its file.
    pub fn release(&self, extra: Option<Hotplugged>) -> Result<()> {
        if let Some((dev, path)) = extra {
            dev.close()?;
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }
}
