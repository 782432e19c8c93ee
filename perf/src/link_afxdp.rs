//! AF_XDP backend for the harness, over veth pairs made for the run:
//! the tester's AF_XDP socket on one end of a pair sends into the DUT's
//! receive port on the other end; the DUT's transmit port is paired with a
//! second tester socket that receives and counts. Both ends run in copy
//! mode (veth has no zero-copy), so the kernel copies every frame twice:
//! a functional figure (well under 1 Mpps), not a speed one.

use crate::link::{Cursor, Link, LinkRole};
use crate::scenario::Prepared;
use anyhow::{bail, Context, Result};
use meshplane::config::{NodeConfig, XdpMode};
use meshplane::frame::{Batch, Frame};
use meshplane::io::afxdp::{AfXdpNode, AfXdpPort, UmemFrame};
use meshplane::io::Port;
use std::process::Command;
use std::time::Duration;

/// A DUT port on an AF_XDP socket, with the tester's socket on the veth peer.
pub struct AfXdpLink {
    port: AfXdpPort,
    role: LinkRole,
    tester: AfXdpPort,
    received: u64,
    scratch: Batch<UmemFrame>,
}

impl AfXdpLink {
    /// Counts and frees what reached the tester's socket.
    #[inline]
    fn collect(&mut self) {
        while self.tester.rx_burst(&mut self.scratch) > 0 {
            self.received += self.scratch.len() as u64;
            self.scratch.clear();
        }
    }
}

impl Port for AfXdpLink {
    type Frame = UmemFrame;

    #[inline]
    fn rx_burst(&mut self, batch: &mut Batch<UmemFrame>) -> usize {
        if self.role == LinkRole::Sink {
            self.collect();
            return 0;
        }
        self.port.rx_burst(batch)
    }

    #[inline]
    fn tx_burst(&mut self, batch: &mut Batch<UmemFrame>) -> usize {
        let sent = self.port.tx_burst(batch);
        if self.role == LinkRole::Sink {
            self.collect();
        }
        sent
    }
}

impl Link for AfXdpLink {
    fn offer(&mut self, src: &mut Cursor<'_>, n: usize) -> usize {
        let mut done = 0;
        while done < n {
            while self.scratch.room() > 0 && done + self.scratch.len() < n {
                let Some(bytes) = src.peek() else { break };
                let Some(mut f) = self.tester.alloc() else {
                    break;
                };
                if !f.append(bytes.len()) {
                    break;
                }
                f.data_mut().copy_from_slice(bytes);
                let _ = self.scratch.push(f);
                src.advance();
            }
            let want = self.scratch.len();
            if want == 0 {
                break;
            }
            let sent = self.tester.tx_burst(&mut self.scratch);
            done += sent;
            // Refused frames go back to the UMEM; the pass skips them.
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

    fn settle(&self) -> Duration {
        // Frames cross the kernel (veth, softirq) after sendto returns.
        Duration::from_millis(20)
    }
}

/// veth pairs made for a run, deleted when dropped (also when the run
/// fails).
#[derive(Default)]
pub struct Veths(Vec<String>);

impl Drop for Veths {
    fn drop(&mut self) {
        for v in &self.0 {
            let _ = Command::new("ip").args(["link", "del", v]).status();
        }
    }
}

fn sh(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0]).args(&args[1..]).output()?;
    if !out.status.success() {
        bail!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

impl Veths {
    /// Makes the veth pair `a` <-> `b` (MTU 2000, IPv6 off so the kernel
    /// sends nothing of its own on it), up, and deleted with `self`.
    pub fn pair(&mut self, a: &str, b: &str) -> Result<()> {
        sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b])
            .context("creating a veth pair (needs root)")?;
        self.0.push(a.to_string());
        for d in [a, b] {
            let _ = sh(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{d}.disable_ipv6=1"),
            ]);
            sh(&["ip", "link", "set", d, "mtu", "2000", "up"])?;
        }
        Ok(())
    }
}

/// Makes two veth pairs and the sockets on all four ends for `prep`'s
/// node. Keep the `Veths` until the links are dropped.
pub fn links(prep: &Prepared, run: u32) -> Result<(Vec<Vec<AfXdpLink>>, Veths)> {
    if prep.hops.len() != 1 {
        bail!("afxdp: the harness runs one node over AF_XDP; the chain runs over memory");
    }
    let hop = &prep.hops[0];
    if hop.node.ports.len() != 2 || hop.rx_port == hop.tx_port {
        bail!(
            "node {}: the harness needs two ports, one in and one out",
            hop.node.name
        );
    }
    let id = format!("{}{run}", std::process::id() % 100_000);
    let (dut_in, gen_out) = (format!("mpx{id}di"), format!("mpx{id}go"));
    let (dut_out, gen_in) = (format!("mpx{id}do"), format!("mpx{id}gi"));
    let mut guard = Veths::default();
    guard.pair(&dut_in, &gen_out)?;
    guard.pair(&dut_out, &gen_in)?;

    let mut node: NodeConfig = hop.node.clone();
    for (i, p) in node.ports.iter_mut().enumerate() {
        p.dpdk = None;
        p.iface = Some(if i == hop.rx_port { &dut_in } else { &dut_out }.clone());
        p.afxdp.mode = XdpMode::Copy;
    }
    let mut dut = AfXdpNode::open(&node, 1)?
        .into_workers()
        .pop()
        .context("one worker")?;
    let tester_cfg = format!(
        "[node]\nname = \"tester\"\nrole = \"satellite\"\n\
         [[ports]]\nname = \"out\"\nmac = \"02:00:00:00:ee:01\"\niface = \"{gen_out}\"\nmode = \"copy\"\n\
         [[ports]]\nname = \"in\"\nmac = \"02:00:00:00:ee:02\"\niface = \"{gen_in}\"\nmode = \"copy\"\n"
    );
    let tester_cfg = NodeConfig::parse(&tester_cfg, "<bench tester>")?;
    let mut tester = AfXdpNode::open(&tester_cfg, 1)?
        .into_workers()
        .pop()
        .context("tester worker")?;
    let t_in = tester.pop().context("tester in")?;
    let t_out = tester.pop().context("tester out")?;
    let tx_dut = dut.remove(hop.tx_port);
    let rx_dut = dut.pop().context("dut rx")?;
    let mk = |port, role, tester| AfXdpLink {
        port,
        role,
        tester,
        received: 0,
        scratch: Batch::new(),
    };
    let mut ports = vec![
        mk(rx_dut, LinkRole::Source, t_out),
        mk(tx_dut, LinkRole::Sink, t_in),
    ];
    if hop.rx_port == 1 {
        ports.swap(0, 1);
    }
    Ok((vec![ports], guard))
}
