//! `[flood]`: link-state notices between the node's neighbours.
//!
//! ```toml
//! [flood]
//! key = "keys/node-5.key"   # this node's Ed25519 key (meshplane keys)
//! trust = "keys/trust"      # every node's public key
//! bound_ms = 200            # a notice applies at its origination time + this
//! ```
//!
//! A node with `[flood]` and BFD on its links announces each link that
//! goes down (or comes back) to its neighbours, signed, and applies what
//! it hears (and what it said) at one instant, as every node does.

use super::{ConfigError, Ctx};
use serde::Deserialize;
use std::path::PathBuf;
use toml::Spanned;

/// Notice flooding (`[flood]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodConfig {
    /// The node's own signing key file.
    pub key: PathBuf,
    /// The constellation's trust file.
    pub trust: PathBuf,
    /// Origination time to application, milliseconds.
    pub bound_ms: u32,
}

/// The default flood bound, milliseconds.
pub const DEFAULT_BOUND_MS: u32 = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlood {
    key: PathBuf,
    trust: PathBuf,
    #[serde(default)]
    bound_ms: Option<Spanned<i64>>,
}

pub(super) fn parse_flood(cx: &Ctx<'_>, r: &RawFlood) -> Result<FloodConfig, ConfigError> {
    let bound_ms = match &r.bound_ms {
        None => DEFAULT_BOUND_MS,
        Some(v) => cx.int(v, "[flood] bound_ms", 1, 60_000, "")?,
    };
    Ok(FloodConfig {
        key: r.key.clone(),
        trust: r.trust.clone(),
        bound_ms,
    })
}
