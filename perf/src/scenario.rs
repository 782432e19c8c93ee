//! Named scenarios: which nodes of the embedded chain run, and the traffic
//! each one receives (gateway A's LAN traffic, or what the hops before it
//! made of that traffic).

use crate::traffic::Traffic;
use anyhow::{bail, Context, Result};
use meshplane::chain::{default_chain, Hop};
use meshplane::config::{AeadAlg, NodeConfig, SaDir};
use meshplane::packet::esp;
use meshplane::replay::{replay_to_memory, ReplayOptions};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The node role a scenario measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Gateway A: classify (LPM -> FEC), ESP encrypt, MPLS push.
    GatewayIngress,
    /// Satellite: MPLS label swap.
    SatelliteTransit,
    /// Gateway B: MPLS pop, anti-replay, ESP decrypt, deliver.
    GatewayEgress,
    /// The three back to back, on one core.
    Chain,
}

impl Role {
    /// Every role, in table order.
    pub const ALL: [Role; 4] = [
        Role::GatewayIngress,
        Role::SatelliteTransit,
        Role::GatewayEgress,
        Role::Chain,
    ];

    /// The scenario name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::GatewayIngress => "gateway-ingress",
            Role::SatelliteTransit => "satellite-transit",
            Role::GatewayEgress => "gateway-egress",
            Role::Chain => "chain",
        }
    }

    /// Indexes of the default chain's hops this role runs.
    fn hops(self) -> std::ops::Range<usize> {
        match self {
            Role::GatewayIngress => 0..1,
            Role::SatelliteTransit => 1..2,
            Role::GatewayEgress => 2..3,
            Role::Chain => 0..3,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Ok(match s {
            "gateway-ingress" | "ingress" => Role::GatewayIngress,
            "satellite-transit" | "transit" => Role::SatelliteTransit,
            "gateway-egress" | "egress" => Role::GatewayEgress,
            "chain" => Role::Chain,
            _ => {
                return Err(format!(
                    "scenario {s:?}: want gateway-ingress, satellite-transit, gateway-egress, chain or all"
                ))
            }
        })
    }
}

/// The AEAD work one frame of a scenario costs: which cipher, and how many
/// bytes each frame has sealed or opened (one entry per ESP operation).
#[derive(Clone)]
pub struct CryptoWork {
    /// Algorithm.
    pub alg: AeadAlg,
    /// SPI (for the key's error messages only).
    pub spi: u32,
    /// Key bytes followed by the 4-byte salt (zeroized on drop).
    pub key: Zeroizing<Vec<u8>>,
    /// ESP operations per frame (2 for the chain: encrypt and decrypt).
    pub ops_per_frame: usize,
    /// Bytes under encryption per frame (inner packet + padding + trailer).
    pub body_lens: Vec<usize>,
}

/// A scenario ready to run: the nodes, and the frames the first one receives.
pub struct Prepared {
    /// The role.
    pub role: Role,
    /// Nodes in order, with the ports traffic enters and leaves by.
    pub hops: Vec<Hop>,
    /// Frames offered to the first node.
    pub input: Traffic,
    /// Mean wire size (L2 with FCS) of gateway A's LAN frames these came from.
    pub lan_mean_wire_bytes: f64,
    /// The AEAD work per frame, for the crypto ceiling (none for transit).
    pub crypto: Option<CryptoWork>,
    /// The first node checks ESP sequence numbers: replaying the same
    /// encrypted frames again needs a fresh anti-replay window per pass.
    pub fresh_sa_per_pass: bool,
}

/// Runs `input` through `hop` once (the data plane's own replay) and
/// returns what it sent on its TX port.
fn through(hop: &Hop, input: &Traffic) -> Result<Traffic> {
    let opts = ReplayOptions {
        loops: 1,
        rx_port: hop.rx_port,
    };
    let (report, mut out) = replay_to_memory(&hop.node, Arc::from(input.to_captured()), &opts)
        .map_err(|e| anyhow::anyhow!("{}: {e}", hop.node.name))?;
    let sent = std::mem::take(&mut out[hop.tx_port]);
    if sent.is_empty() {
        bail!(
            "node {} forwarded none of the {} frames of the input:\n{}",
            hop.node.name,
            input.len(),
            report.render()
        );
    }
    Ok(Traffic::from_captured(&sent))
}

fn sa_of(node: &NodeConfig, dir: SaDir) -> Result<&meshplane::config::SaConfig> {
    node.sa
        .iter()
        .find(|s| s.dir == dir)
        .with_context(|| format!("node {} has no {dir:?} SA", node.name))
}

/// Prepares `role` over gateway A's LAN traffic `lan`.
pub fn prepare(role: Role, lan: &Traffic) -> Result<Prepared> {
    let chain = default_chain().context("embedded chain configs")?;
    let mut input = lan.clone();
    for hop in &chain[..role.hops().start] {
        input = through(hop, &input)?;
    }
    // ESP body per LAN frame: inner IP packet (the frame without its
    // Ethernet header) + padding + pad length + next header.
    let body_lens: Vec<usize> = (0..lan.len())
        .map(|i| {
            let inner = lan.frame(i).len().saturating_sub(14);
            inner + esp::pad_len(inner) + esp::TRAILER_LEN
        })
        .collect();
    let crypto_from = |node: &NodeConfig, dir: SaDir, ops: usize| -> Result<CryptoWork> {
        let sa = sa_of(node, dir)?;
        Ok(CryptoWork {
            alg: sa.aead,
            spi: sa.spi,
            key: sa.key.clone(),
            ops_per_frame: ops,
            body_lens: body_lens.clone(),
        })
    };
    let crypto = match role {
        Role::GatewayIngress => Some(crypto_from(&chain[0].node, SaDir::Out, 1)?),
        Role::GatewayEgress => Some(crypto_from(&chain[2].node, SaDir::In, 1)?),
        Role::Chain => Some(crypto_from(&chain[0].node, SaDir::Out, 2)?),
        Role::SatelliteTransit => None,
    };
    Ok(Prepared {
        role,
        hops: chain[role.hops()].to_vec(),
        input,
        lan_mean_wire_bytes: lan.mean_wire_bytes(),
        crypto,
        fresh_sa_per_pass: role == Role::GatewayEgress,
    })
}
