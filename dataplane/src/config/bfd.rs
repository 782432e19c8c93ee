//! `[bfd]`: link liveness (RFC 5880 / 5881) on the node's links.
//!
//! ```toml
//! [bfd]
//! links = true              # a session on every isl*/gsl* port (needs [control]); default true
//! desired_min_tx_ms = 10    # once Up (one second while not, RFC 5880 §6.8.3)
//! required_min_rx_ms = 10
//! detect_mult = 3
//! hold_down_ms = 1000       # a link that comes back is used again after this long Up
//! key_id = 1                # Meticulous Keyed SHA1 (RFC 5880 §6.7.4), optional
//! key = "00112233..."       # 1 to 20 bytes, hex
//!
//! [[bfd.peer]]              # a session to a router that is not a constellation node
//! port = "lan0"
//! address = "10.9.0.2"
//! local = "10.9.0.1"        # default: the port's address, else the node address
//! ```

use super::{echo, ConfigError, Ctx};
use serde::Deserialize;
use std::net::Ipv4Addr;
use toml::Spanned;
use zeroize::Zeroizing;

/// BFD settings of a node (`[bfd]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdConfig {
    /// A session on every port toward a constellation node (ports named
    /// `isl<ID>` / `gsl<ID>` by the control plane).
    pub links: bool,
    /// Desired Min TX Interval once Up, microseconds.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, microseconds.
    pub required_min_rx_us: u32,
    /// Detect Mult.
    pub detect_mult: u8,
    /// How long a link that went down must stay Up before it is used
    /// again, milliseconds.
    pub hold_down_ms: u32,
    /// Meticulous Keyed SHA1: key id and key (1 to 20 bytes).
    pub auth: Option<(u8, Zeroizing<Vec<u8>>)>,
    /// Sessions to other routers.
    pub peers: Vec<BfdPeerConfig>,
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            links: true,
            desired_min_tx_us: 10_000,
            required_min_rx_us: 10_000,
            detect_mult: 3,
            hold_down_ms: 1000,
            auth: None,
            peers: Vec::new(),
        }
    }
}

/// A session to a neighbour that is not a constellation node
/// (`[[bfd.peer]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BfdPeerConfig {
    /// The port it is reached on.
    pub port: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// The source address (`None`: the port's address, else the node
    /// address).
    pub local: Option<Ipv4Addr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBfd {
    #[serde(default)]
    links: Option<bool>,
    #[serde(default)]
    desired_min_tx_ms: Option<Spanned<i64>>,
    #[serde(default)]
    required_min_rx_ms: Option<Spanned<i64>>,
    #[serde(default)]
    detect_mult: Option<Spanned<i64>>,
    #[serde(default)]
    hold_down_ms: Option<Spanned<i64>>,
    #[serde(default)]
    key_id: Option<Spanned<i64>>,
    #[serde(default)]
    key: Option<Spanned<String>>,
    #[serde(default)]
    peer: Vec<Spanned<RawBfdPeer>>,
}

impl RawBfd {
    /// The `[[bfd.peer]]` entries as written.
    pub(super) fn peers(&self) -> &[Spanned<RawBfdPeer>] {
        &self.peer
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBfdPeer {
    port: Spanned<String>,
    address: Spanned<String>,
    #[serde(default)]
    local: Option<Spanned<String>>,
}

/// Longest interval the timers take, milliseconds (a minute).
const MAX_INTERVAL_MS: u32 = 60_000;
/// Most `[[bfd.peer]]` sessions.
pub const MAX_PEERS: usize = 256;

pub(super) fn parse_bfd(
    cx: &Ctx<'_>,
    r_: &RawBfd,
    port_ref: &dyn Fn(&Spanned<String>) -> Result<String, ConfigError>,
) -> Result<BfdConfig, ConfigError> {
    let d = BfdConfig::default();
    let ms = |v: &Option<Spanned<i64>>, field: &str, default_us: u32| match v {
        None => Ok(default_us),
        Some(v) => cx
            .int(v, &format!("[bfd] {field}"), 1, MAX_INTERVAL_MS, "")
            .map(|ms| ms * 1000),
    };
    let detect_mult = match &r_.detect_mult {
        None => d.detect_mult,
        Some(v) => cx.int(v, "[bfd] detect_mult", 1, 255, "")? as u8,
    };
    let hold_down_ms = match &r_.hold_down_ms {
        None => d.hold_down_ms,
        Some(v) => cx.int(v, "[bfd] hold_down_ms", 0, 3_600_000, "")?,
    };
    let auth = match (&r_.key_id, &r_.key) {
        (None, None) => None,
        (Some(id), Some(k)) => {
            let id = cx.int(id, "[bfd] key_id", 0, 255, "")? as u8;
            let key = Zeroizing::new(
                hex::decode(k.get_ref().trim())
                    .map_err(|_| cx.err(k.span(), "[bfd] key is not hex (1 to 20 bytes)"))?,
            );
            if key.is_empty() || key.len() > 20 {
                return Err(cx.err(
                    k.span(),
                    format!(
                        "[bfd] key has {} bytes: Meticulous Keyed SHA1 takes 1 to 20",
                        key.len()
                    ),
                ));
            }
            Some((id, key))
        }
        (Some(v), None) => {
            return Err(cx.err(v.span(), "[bfd] key_id without key"));
        }
        (None, Some(v)) => {
            return Err(cx.err(v.span(), "[bfd] key without key_id"));
        }
    };
    if let Some(extra) = r_.peer.get(MAX_PEERS) {
        return Err(cx.err(
            extra.span(),
            format!("[bfd] has {} peers: at most {MAX_PEERS}", r_.peer.len()),
        ));
    }
    let mut peers: Vec<BfdPeerConfig> = Vec::with_capacity(r_.peer.len());
    for p in &r_.peer {
        let p = p.get_ref();
        let port = port_ref(&p.port)?;
        let address = cx.host_address(&p.address, "[[bfd.peer]] address")?;
        let local = p
            .local
            .as_ref()
            .map(|l| cx.host_address(l, "[[bfd.peer]] local"))
            .transpose()?;
        if local == Some(address) {
            return Err(cx.err(
                p.address.span(),
                format!("[[bfd.peer]] address {address} is its own local address"),
            ));
        }
        if peers.iter().any(|q| q.port == port && q.address == address) {
            return Err(cx.err(
                p.address.span(),
                format!(
                    "[[bfd.peer]] {address} on port {} is listed twice",
                    echo(&port)
                ),
            ));
        }
        peers.push(BfdPeerConfig {
            port,
            address,
            local,
        });
    }
    Ok(BfdConfig {
        links: r_.links.unwrap_or(d.links),
        desired_min_tx_us: ms(
            &r_.desired_min_tx_ms,
            "desired_min_tx_ms",
            d.desired_min_tx_us,
        )?,
        required_min_rx_us: ms(
            &r_.required_min_rx_ms,
            "required_min_rx_ms",
            d.required_min_rx_us,
        )?,
        detect_mult,
        hold_down_ms,
        auth,
        peers,
    })
}
