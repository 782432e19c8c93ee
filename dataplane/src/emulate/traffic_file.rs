//! `meshplane emulate --traffic FILE`: the flows of a run described in
//! TOML, one `[[flow]]` per flow.
//!
//! ```toml
//! [[flow]]
//! from = "London"            # an emulated gateway: station name or gid
//! to = "New-York-Newark"
//! rate_pps = 100             # the mean rate, for Poisson arrivals
//! size = 1420                # bytes on the LAN (with FCS), or "imix"
//! kind = "ping"              # or "oneway" (default "ping")
//! arrivals = "poisson"       # or "cbr" (default)
//! dscp = 46                  # 0..=63 (default 0)
//! ```

use super::traffic::{Arrivals, FlowKind, FlowSpec};
use crate::gen::FrameSize;
use meshplane_control::GroundStations;

/// Most flows one file may describe.
pub const MAX_FLOWS: usize = 1_000_000;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    flow: Vec<RawFlow>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    from: toml::Value,
    to: toml::Value,
    rate_pps: f64,
    #[serde(default)]
    size: Option<toml::Value>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    arrivals: Option<Arrivals>,
    #[serde(default)]
    dscp: Option<i64>,
}

/// A TOML string or integer as text (`"imix"`, `1420`, `"London"`, `3`).
fn text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        _ => None,
    }
}

/// The flows `text` describes between `gateways` (gids in `stations`,
/// in the order the emulator numbers them). An error names the flow
/// (counted from 1) and the field.
pub fn parse(
    src: &str,
    stations: &GroundStations,
    gateways: &[u32],
) -> Result<Vec<FlowSpec>, String> {
    let raw: RawFile = toml::from_str(src).map_err(|e| e.to_string())?;
    if raw.flow.is_empty() {
        return Err("no [[flow]]: describe at least one flow".into());
    }
    if raw.flow.len() > MAX_FLOWS {
        return Err(format!("{} flows; at most {MAX_FLOWS}", raw.flow.len()));
    }
    let gateway = |n: usize, field: &str, v: &toml::Value| -> Result<u32, String> {
        let q = text(v).ok_or_else(|| format!("flow {n}: {field} must be a name or a gid"))?;
        let gid = stations
            .find(&q)
            .map_err(|e| format!("flow {n}: {field} {q:?}: {e}"))?;
        gateways
            .iter()
            .position(|&g| g == gid)
            .map(|i| i as u32)
            .ok_or_else(|| {
                format!("flow {n}: {field} {q:?} is not one of the emulated gateways (--gateways)")
            })
    };
    let mut out = Vec::with_capacity(raw.flow.len());
    for (k, f) in raw.flow.iter().enumerate() {
        let n = k + 1;
        let (src, dst) = (gateway(n, "from", &f.from)?, gateway(n, "to", &f.to)?);
        if src == dst {
            return Err(format!("flow {n}: from and to are the same gateway"));
        }
        if !(f.rate_pps.is_finite() && f.rate_pps > 0.0 && f.rate_pps <= 1e9) {
            return Err(format!(
                "flow {n}: rate_pps {} (want more than 0, at most 1e9)",
                f.rate_pps
            ));
        }
        let size = match &f.size {
            None => FrameSize::Fixed(64),
            Some(v) => text(v)
                .ok_or_else(|| format!("flow {n}: size must be bytes or \"imix\""))?
                .parse::<FrameSize>()
                .map_err(|e| format!("flow {n}: {e}"))?,
        };
        let kind = match &f.kind {
            None => FlowKind::Ping,
            Some(s) => s
                .parse::<FlowKind>()
                .map_err(|e| format!("flow {n}: {e}"))?,
        };
        let dscp = match f.dscp {
            None => 0,
            Some(d @ 0..=63) => d as u8,
            Some(d) => return Err(format!("flow {n}: dscp {d} (0 to 63)")),
        };
        out.push(FlowSpec {
            src,
            dst,
            rate_pps: f.rate_pps,
            size,
            kind,
            arrivals: f.arrivals.unwrap_or_default(),
            dscp,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gateways(st: &GroundStations, names: &[&str]) -> Vec<u32> {
        let mut g: Vec<u32> = names.iter().map(|n| st.find(n).expect("station")).collect();
        g.sort_unstable();
        g
    }

    #[test]
    fn flows_are_read_with_their_defaults() {
        let st = GroundStations::top100();
        let gw = gateways(&st, &["London", "Tokyo", "Paris"]);
        let flows = parse(
            r#"
[[flow]]
from = "London"
to = "Tokyo"
rate_pps = 100
size = "imix"
kind = "oneway"
arrivals = "poisson"
dscp = 46

[[flow]]
from = "Paris"
to = "London"
rate_pps = 2.5
"#,
            &st,
            &gw,
        )
        .expect("flows");
        assert_eq!(flows.len(), 2);
        let idx = |n: &str| gw.iter().position(|&g| g == st.find(n).unwrap()).unwrap() as u32;
        let f = &flows[0];
        assert_eq!((f.src, f.dst), (idx("London"), idx("Tokyo")));
        assert_eq!(f.size, FrameSize::Imix);
        assert_eq!(f.kind, FlowKind::Oneway);
        assert_eq!(f.arrivals, Arrivals::Poisson);
        assert_eq!(f.dscp, 46);
        let g = &flows[1];
        assert_eq!(
            (g.rate_pps, g.size, g.kind),
            (2.5, FrameSize::Fixed(64), FlowKind::Ping)
        );
        assert_eq!((g.arrivals, g.dscp), (Arrivals::Cbr, 0));
    }

    #[test]
    fn a_broken_file_is_refused_naming_the_flow_and_field() {
        let st = GroundStations::top100();
        let gw = gateways(&st, &["London", "Tokyo"]);
        let err = |t: &str| parse(t, &st, &gw).expect_err(t);
        let one = |extra: &str| {
            format!("[[flow]]\nfrom = \"London\"\nto = \"Tokyo\"\nrate_pps = 10\n{extra}")
        };
        assert!(err("").contains("no [[flow]]"));
        assert!(err(&one("dscp = 64")).contains("flow 1: dscp 64"));
        assert!(err(&one("size = 12")).contains("flow 1: frame size 12"));
        assert!(err(&one("kind = \"burst\"")).contains("flow 1: flow kind"));
        assert!(err(&one("colour = 1")).contains("unknown field"));
        assert!(err(&one("arrivals = \"bursty\"")).contains("unknown variant"));
        assert!(
            err("[[flow]]\nfrom = \"London\"\nto = \"Paris\"\nrate_pps = 1\n")
                .contains("flow 1: to \"Paris\" is not one of the emulated gateways")
        );
        assert!(
            err("[[flow]]\nfrom = \"London\"\nto = \"London\"\nrate_pps = 1\n")
                .contains("the same gateway")
        );
        assert!(
            err("[[flow]]\nfrom = \"London\"\nto = \"Tokyo\"\nrate_pps = -1\n")
                .contains("flow 1: rate_pps -1")
        );
        assert!(
            err("[[flow]]\nfrom = \"London\"\nto = \"Tokyo\"\nrate_pps = nan\n")
                .contains("rate_pps NaN")
        );
    }
}
