//! A chain of nodes run back to back over captures: gateway ingress ->
//! satellites -> gateway egress, each node's transmitted frames fed to the
//! next. The embedded default chain is meshplane's main job.

#![warn(missing_docs)]

use crate::config::{ConfigError, NodeConfig};
use crate::io::pcap::CapturedPacket;
use crate::packet::vlan;
use crate::replay::{replay_to_memory, ReplayOptions, ReplayReport};
use std::sync::Arc;

/// The embedded default: gateway A, satellite 1, gateway B.
pub const DEFAULT_CHAIN: [(&str, &str); 3] = [
    ("gw-a.toml", include_str!("../configs/gw-a.toml")),
    ("sat-1.toml", include_str!("../configs/sat-1.toml")),
    ("gw-b.toml", include_str!("../configs/gw-b.toml")),
];

/// One hop of a chain: a node and the ports it receives on and sends from.
#[derive(Clone, Debug)]
pub struct Hop {
    /// The node.
    pub node: NodeConfig,
    /// Port the previous hop's traffic arrives on.
    pub rx_port: usize,
    /// Port whose output feeds the next hop.
    pub tx_port: usize,
}

/// Loads the embedded default chain (A -> sat-1 -> B).
pub fn default_chain() -> Result<Vec<Hop>, ConfigError> {
    let n: Vec<NodeConfig> = DEFAULT_CHAIN
        .iter()
        .map(|(name, text)| NodeConfig::parse(text, &format!("<embedded {name}>")))
        .collect::<Result<_, _>>()?;
    let port = |c: &NodeConfig, p: &str| c.port_index(p).map(usize::from).unwrap_or(0);
    Ok(vec![
        Hop {
            rx_port: port(&n[0], "lan0"),
            tx_port: port(&n[0], "up0"),
            node: n[0].clone(),
        },
        Hop {
            rx_port: port(&n[1], "gsl-a"),
            tx_port: port(&n[1], "gsl-b"),
            node: n[1].clone(),
        },
        Hop {
            rx_port: port(&n[2], "up0"),
            tx_port: port(&n[2], "lan0"),
            node: n[2].clone(),
        },
    ])
}

/// What a chain run produced.
pub struct ChainResult {
    /// One report per hop.
    pub reports: Vec<ReplayReport>,
    /// The frames each hop sent on its `tx_port` (the last is the chain's output).
    pub outputs: Vec<Vec<CapturedPacket>>,
}

/// Runs `input` through every hop in turn.
pub fn run_chain(
    hops: &[Hop],
    input: Vec<CapturedPacket>,
    loops: u64,
) -> Result<ChainResult, String> {
    let mut current: Arc<[CapturedPacket]> = input.into();
    let mut reports = Vec::new();
    let mut outputs = Vec::new();
    for (i, hop) in hops.iter().enumerate() {
        let opts = ReplayOptions {
            loops: if i == 0 { loops } else { 1 },
            rx_port: hop.rx_port,
        };
        let (report, mut per_port) = replay_to_memory(&hop.node, current.clone(), &opts)
            .map_err(|e| format!("node {}: {e}", hop.node.name))?;
        let out = per_port
            .get_mut(hop.tx_port)
            .map(std::mem::take)
            .ok_or_else(|| {
                format!(
                    "node {}: tx port {} does not exist (node has {} ports)",
                    hop.node.name,
                    hop.tx_port,
                    per_port.len()
                )
            })?;
        current = out.clone().into();
        outputs.push(out);
        reports.push(report);
    }
    Ok(ChainResult { reports, outputs })
}

/// The IP packet inside an Ethernet frame (after any VLAN tags).
pub fn inner_ip(frame: &[u8]) -> Option<&[u8]> {
    let l2 = vlan::parse_l2(frame).ok()?;
    let ip = &frame[l2.header_len..];
    // Trim Ethernet padding using the IP length.
    match ip.first()? >> 4 {
        4 => {
            let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
            ip.get(..total)
        }
        6 => {
            let total = 40 + usize::from(u16::from_be_bytes([*ip.get(4)?, *ip.get(5)?]));
            ip.get(..total)
        }
        _ => None,
    }
}

/// An IP packet as it leaves `ip_hops` routers that each decremented its
/// TTL (IPv4, checksum recomputed) or hop limit (IPv6): what a host behind
/// the egress gateway receives for `ip` sent by a host behind the ingress
/// (two IP hops: both gateways forward it). None for a packet that would
/// not survive them or is not IP.
pub fn forwarded(ip: &[u8], ip_hops: u8) -> Option<Vec<u8>> {
    let mut p = ip.to_vec();
    match p.first()? >> 4 {
        4 => {
            let ttl = p.get(8)?.checked_sub(ip_hops).filter(|t| *t >= 1)?;
            p[8] = ttl;
            let ihl = usize::from(p[0] & 0x0f) * 4;
            p.get_mut(10..12)?.fill(0);
            let c = crate::packet::checksum::internet_checksum(p.get(..ihl)?);
            p[10..12].copy_from_slice(&c.to_be_bytes());
        }
        6 => {
            let hl = p.get(7)?.checked_sub(ip_hops).filter(|t| *t >= 1)?;
            p[7] = hl;
        }
        _ => return None,
    }
    Some(p)
}

/// Compares the inner IP packets of the chain's output with its input
/// replayed `loops` times, in order, each as it leaves `ip_hops` routers
/// (see [`forwarded`]): returns (matching, mismatching, missing or extra).
pub fn verify_inner(
    input: &[CapturedPacket],
    loops: u64,
    ip_hops: u8,
    output: &[CapturedPacket],
) -> (u64, u64) {
    let expected = (input.len() as u64).saturating_mul(loops);
    let mut ok = 0;
    let mut bad = 0;
    for (i, o) in output.iter().enumerate() {
        if i as u64 >= expected {
            // More out than went in: a duplicate is a failure too.
            bad += 1;
            continue;
        }
        let Some(p) = input.get(i % input.len().max(1)) else {
            bad += 1;
            continue;
        };
        match (
            inner_ip(&p.data).and_then(|a| forwarded(a, ip_hops)),
            inner_ip(&o.data),
        ) {
            (Some(a), Some(b)) if a == b => ok += 1,
            _ => bad += 1,
        }
    }
    bad += expected.saturating_sub(output.len() as u64);
    (ok, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gen::{generate, GenSpec};

    #[test]
    fn extra_output_counts_as_bad_and_a_missing_tx_port_is_an_error() {
        let input = generate(&GenSpec {
            count: 3,
            ..GenSpec::default()
        })
        .expect("gen");
        assert_eq!(verify_inner(&input, 1, 0, &input), (3, 0));
        assert_eq!(
            verify_inner(&input, 1, 2, &input),
            (0, 3),
            "TTL not decremented"
        );
        let mut dup = input.clone();
        dup.push(input[0].clone());
        assert_eq!(verify_inner(&input, 1, 0, &dup), (3, 1));
        assert_eq!(verify_inner(&input, 2, 0, &input), (3, 3));

        let mut hops = default_chain().expect("chain");
        hops[0].tx_port = 99;
        let e = run_chain(&hops, input, 1).err().expect("no port 99");
        assert!(e.contains("tx port 99 does not exist"), "{e}");
    }
}
