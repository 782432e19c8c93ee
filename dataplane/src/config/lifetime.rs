//! `lifetime` of an `[[sa]]`: soft and hard limits (RFC 4301 §4.4.2.1).
//!
//! ```toml
//! [[sa]]
//! spi = 4097
//! # ...
//! lifetime = { soft_packets = 900_000_000, hard_packets = 1_000_000_000, hard_seconds = 86400 }
//! ```
//!
//! or, the same, as a table of its own after the SA's keys:
//!
//! ```toml
//! [sa.lifetime]
//! soft_bytes = 1_000_000_000_000
//! hard_bytes = 1_100_000_000_000
//! soft_seconds = 3600
//! hard_seconds = 4000
//! ```
//!
//! Every key is optional; each is at least 1, a soft limit is below the
//! hard limit of its kind, and without ESN a packet limit is at most
//! 2^32-1. See `sa::lifetime` for what each counts.

use super::{ConfigError, Ctx, SaConfig, SaDir};
use crate::sa::lifetime::{LifetimeError, SEQ_MAX_32, SEQ_SOFT_32};
use crate::sa::{Lifetime, Limits};
use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLifetime {
    #[serde(default)]
    soft_packets: Option<Spanned<i64>>,
    #[serde(default)]
    hard_packets: Option<Spanned<i64>>,
    #[serde(default)]
    soft_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    hard_bytes: Option<Spanned<i64>>,
    #[serde(default)]
    soft_seconds: Option<Spanned<i64>>,
    #[serde(default)]
    hard_seconds: Option<Spanned<i64>>,
}

impl RawLifetime {
    fn fields(&self) -> [(&'static str, &Option<Spanned<i64>>); 6] {
        [
            ("soft_packets", &self.soft_packets),
            ("hard_packets", &self.hard_packets),
            ("soft_bytes", &self.soft_bytes),
            ("hard_bytes", &self.hard_bytes),
            ("soft_seconds", &self.soft_seconds),
            ("hard_seconds", &self.hard_seconds),
        ]
    }
}

/// The lifetime of SA `spi` (with or without `esn`) as written; errors name
/// the SA, the key and the line it is on.
pub(super) fn parse_lifetime(
    cx: &Ctx<'_>,
    spi: u32,
    esn: bool,
    r: &RawLifetime,
) -> Result<Lifetime, ConfigError> {
    parse_lifetime_of(cx, &format!("SA {spi}"), esn, r)
}

/// The lifetime `what` (`SA 4097`, `[ike]`) gives, as written; errors
/// name `what`, the key and its line.
pub(super) fn parse_lifetime_of(
    cx: &Ctx<'_>,
    what: &str,
    esn: bool,
    r: &RawLifetime,
) -> Result<Lifetime, ConfigError> {
    let fields = r.fields();
    let mut v = [None; 6];
    for (slot, (name, field)) in v.iter_mut().zip(fields.iter()) {
        if let Some(s) = field {
            let x = *s.get_ref();
            *slot = Some(u64::try_from(x).map_err(|_| {
                cx.err(
                    s.span(),
                    format!(
                        "{what}: lifetime {name} = {x} is out of range: want 1 to {}",
                        i64::MAX
                    ),
                )
            })?);
        }
    }
    let l = Lifetime {
        soft: Limits {
            packets: v[0],
            bytes: v[2],
            seconds: v[4],
        },
        hard: Limits {
            packets: v[1],
            bytes: v[3],
            seconds: v[5],
        },
    };
    l.validate(esn).map_err(|e| {
        let field = match &e {
            LifetimeError::Zero { field } | LifetimeError::BeyondSequenceSpace { field, .. } => {
                *field
            }
            LifetimeError::SoftNotBelowHard { kind, .. } => match *kind {
                "packets" => "soft_packets",
                "bytes" => "soft_bytes",
                _ => "soft_seconds",
            },
        };
        let span = fields
            .iter()
            .find(|(name, _)| *name == field)
            .and_then(|(_, f)| f.as_ref())
            .map_or(0..0, |s| s.span());
        cx.err(span, format!("{what}: lifetime {e}"))
    })?;
    Ok(l)
}

/// One level's limits as a person reads them: `900 packets, 3600 s`.
fn limits_text(l: &Limits) -> Option<String> {
    let parts: Vec<String> = [
        l.packets.map(|v| format!("{v} packets")),
        l.bytes.map(|v| format!("{v} bytes")),
        l.seconds.map(|v| format!("{v} s")),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

impl SaConfig {
    /// What `check-config` says of the SA: its sequence numbers and
    /// lifetime, and what that means for how long it lasts.
    pub fn summary(&self) -> String {
        let dir = match self.dir {
            SaDir::Out => "out",
            SaDir::In => "in",
        };
        let seq = match (self.esn, self.dir) {
            (true, _) => "64-bit sequence numbers (esn = true)".to_string(),
            (false, SaDir::Out) => format!(
                "32-bit sequence numbers (esn = false, the default): asks for a rekey after \
                 {SEQ_SOFT_32} and expires after {SEQ_MAX_32} packets; esn = true on both ends lifts this"
            ),
            (false, SaDir::In) => format!(
                "32-bit sequence numbers (esn = false, the default): the peer can send at most \
                 {SEQ_MAX_32} packets on it; esn = true on both ends lifts this"
            ),
        };
        let l = &self.lifetime;
        let life = match (limits_text(&l.soft), limits_text(&l.hard)) {
            (None, None) => "no lifetime limits".to_string(),
            (soft, hard) => format!(
                "lifetime: rekey at {}, expires at {}",
                soft.as_deref().unwrap_or("-"),
                hard.as_deref().unwrap_or("-")
            ),
        };
        format!(
            "SA {} {dir} {} -> {}: {seq}; {life}",
            self.spi, self.tunnel_src, self.tunnel_dst
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::config::NodeConfig;

    #[test]
    fn the_summary_says_how_long_each_sa_lasts() {
        let c = crate::chain::default_chain().expect("chain")[0]
            .node
            .clone();
        assert_eq!(
            c.sa[0].summary(),
            "SA 4097 out 192.0.2.1 -> 192.0.2.2: 32-bit sequence numbers (esn = false, the default): \
             asks for a rekey after 4026531840 and expires after 4294967295 packets; \
             esn = true on both ends lifts this; no lifetime limits"
        );
        assert_eq!(
            c.sa[1].summary(),
            "SA 4098 in 192.0.2.2 -> 192.0.2.1: 64-bit sequence numbers (esn = true); no lifetime limits"
        );
        let text = include_str!("../../configs/gw-a.toml").replacen(
            "esn = true\n",
            "esn = true\nlifetime = { soft_seconds = 3000, hard_seconds = 3600, hard_bytes = 1000000 }\n",
            1,
        );
        let c = NodeConfig::parse(&text, "gw-a.toml").expect("config");
        assert!(
            c.sa[1].summary().ends_with(
                "(esn = true); lifetime: rekey at 3000 s, expires at 1000000 bytes, 3600 s"
            ),
            "{}",
            c.sa[1].summary()
        );
    }
}
