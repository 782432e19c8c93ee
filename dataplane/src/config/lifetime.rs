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

use super::{ConfigError, Ctx};
use crate::sa::lifetime::LifetimeError;
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
    let fields = r.fields();
    let mut v = [None; 6];
    for (slot, (name, field)) in v.iter_mut().zip(fields.iter()) {
        if let Some(s) = field {
            let x = *s.get_ref();
            *slot = Some(u64::try_from(x).map_err(|_| {
                cx.err(
                    s.span(),
                    format!(
                        "SA {spi}: lifetime {name} = {x} is out of range: want 1 to {}",
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
        cx.err(span, format!("SA {spi}: lifetime {e}"))
    })?;
    Ok(l)
}
