//! `--svg`: one hand-written SVG with two panels, the forwarding rate per
//! scenario (bars, with the I/O and crypto ceilings and the NDR marked on
//! each) and the latency distribution (latency by percentile, log scales).

use crate::report::{Report, ScenarioResult};
use crate::scenario::Role;
use std::fmt::Write;

const W: f64 = 1200.0;
const LEFT: f64 = 300.0;
const RIGHT: f64 = 250.0;
const ROW: f64 = 34.0;
/// Dash patterns telling apart the traffic (frame sizes) of one role.
const DASHES: [&str; 5] = ["", "8 4", "2 3", "12 3 2 3", "4 2"];

fn role_color(r: Role) -> &'static str {
    match r {
        Role::GatewayIngress => "#2563eb",
        Role::SatelliteTransit => "#16a34a",
        Role::GatewayEgress => "#dc2626",
        Role::Chain => "#9333ea",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis step for a range up to `max` with about `n` ticks.
fn nice_step(max: f64, n: f64) -> f64 {
    let raw = (max / n).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nf = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nf * mag
}

fn label(r: &ScenarioResult) -> String {
    format!("{} · {} · {}", r.scenario, r.traffic, r.backend)
}

fn fmt_ns(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.0} ms", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.0} µs", v / 1e3)
    } else {
        format!("{v:.0} ns")
    }
}

/// Renders the report as an SVG document.
pub fn render(rep: &Report) -> String {
    let rs = &rep.results;
    let mut s = String::new();
    let bars_top = 110.0;
    let bars_h = ROW * rs.len().max(1) as f64;
    let lat_top = bars_top + bars_h + 120.0;
    let lat_h = 340.0;
    let height = lat_top + lat_h + 80.0 + 18.0 * rs.len() as f64;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">"#
    );
    let _ = writeln!(
        s,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="24" y="36" font-size="22" font-weight="bold" fill="#111827">meshplane-bench: forwarding rate per core</text>
<text x="24" y="60" fill="#4b5563">{} · {} CPUs · Linux {}</text>
<g font-size="12" fill="#374151">
<rect x="24" y="74" width="14" height="10" fill="#e5e7eb" stroke="#9ca3af"/><text x="44" y="84">I/O ceiling (same backend, no stages)</text>
<rect x="290" y="74" width="14" height="10" fill="#2563eb"/><text x="310" y="84">data plane (colour by role)</text>
<line x1="500" y1="72" x2="500" y2="88" stroke="#f59e0b" stroke-width="3"/><text x="508" y="84">crypto ceiling (AEAD alone)</text>
<path d="M 700 73 l 6 6 l -6 6 l -6 -6 z" fill="#111827"/><text x="712" y="84">NDR (zero loss)</text>
</g>"##,
        esc(&rep.host.cpu),
        rep.host.cpus,
        esc(&rep.host.kernel)
    );

    // Panel 1: bars.
    let max = rs
        .iter()
        .flat_map(|r| {
            [
                Some(r.pipeline.rate()),
                r.io_ceiling.as_ref().map(|f| f.rate()),
                r.crypto_ceiling.as_ref().map(|c| c.mpps),
                r.ndr.as_ref().map(|n| n.mpps),
            ]
        })
        .flatten()
        .fold(0.0f64, f64::max)
        .max(0.001);
    let step = nice_step(max, 6.0);
    let top = (max / step).ceil() * step;
    let pw = W - LEFT - RIGHT;
    let x = |v: f64| LEFT + v / top * pw;
    let mut t = 0.0;
    while t <= top + step * 0.01 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1}" x2="{0:.1}" y2="{2}" stroke="#e5e7eb"/><text x="{0:.1}" y="{3}" text-anchor="middle" fill="#6b7280" font-size="11">{4}</text>"##,
            x(t),
            bars_top - 6.0,
            bars_top + bars_h,
            bars_top + bars_h + 16.0,
            trim_num(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{}" text-anchor="middle" fill="#374151">million frames per second of one core (Mpps per on-CPU second)</text>"##,
        LEFT + pw / 2.0,
        bars_top + bars_h + 36.0
    );
    for (i, r) in rs.iter().enumerate() {
        let y = bars_top + i as f64 * ROW;
        let c = role_color(r.role);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#111827">{}</text>"##,
            LEFT - 10.0,
            y + ROW / 2.0 + 4.0,
            esc(&label(r))
        );
        if let Some(io) = &r.io_ceiling {
            let _ = writeln!(
                s,
                r##"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#e5e7eb" stroke="#9ca3af" rx="2"/>"##,
                y + 4.0,
                x(io.rate()) - LEFT,
                ROW - 8.0
            );
        }
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{c}" rx="2"><title>{}: {:.3} Mpps</title></rect>"##,
            y + 9.0,
            (x(r.pipeline.rate()) - LEFT).max(1.0),
            ROW - 18.0,
            esc(&label(r)),
            r.pipeline.rate()
        );
        if let Some(cc) = &r.crypto_ceiling {
            let _ = writeln!(
                s,
                r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#f59e0b" stroke-width="3"/>"##,
                x(cc.mpps),
                y + 2.0,
                y + ROW - 2.0
            );
        }
        if let Some(n) = &r.ndr {
            let _ = writeln!(
                s,
                r##"<path d="M {:.1} {:.1} l 6 6 l -6 6 l -6 -6 z" fill="#111827"/>"##,
                x(n.mpps),
                y + ROW / 2.0 - 6.0
            );
        }
        let mut note = format!("{:.2} Mpps", r.pipeline.rate());
        if let Some(v) = r.ratio_io {
            let _ = write!(note, " · {v:.2}× I/O");
        }
        if let Some(v) = r.ratio_crypto {
            let _ = write!(note, " · {v:.2}× AEAD");
        }
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#374151" font-size="12">{}</text>"##,
            W - RIGHT + 8.0,
            y + ROW / 2.0 + 4.0,
            note
        );
    }

    // Panel 2: latency by percentile.
    let _ = writeln!(
        s,
        r##"<text x="24" y="{:.1}" font-size="18" font-weight="bold" fill="#111827">Latency by percentile (DUT RX burst to TX burst)</text>"##,
        lat_top - 40.0
    );
    let pts: Vec<(usize, Vec<(f64, f64)>)> = rs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            r.latency_ns.as_ref().map(|l| {
                let v: Vec<(f64, f64)> = l
                    .distribution
                    .iter()
                    .map(|&(p, ns)| {
                        // x = number of nines: 90 -> 1, 99 -> 2, max -> 5.3
                        let q = (p / 100.0).min(0.999_995);
                        (-(1.0 - q).log10(), (ns as f64).max(1.0))
                    })
                    .collect();
                (i, v)
            })
        })
        .collect();
    let (lo, hi) = pts
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.1))
        .fold((f64::MAX, 1.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let ylo = 10f64.powf(lo.min(hi).log10().floor());
    let yhi = 10f64.powf(hi.log10().ceil()).max(ylo * 10.0);
    let (lx, lw) = (LEFT - 200.0, W - LEFT - RIGHT + 200.0);
    let xmax = 5.4;
    let px = |v: f64| lx + v / xmax * lw;
    let py =
        |v: f64| lat_top + lat_h - (v.log10() - ylo.log10()) / (yhi.log10() - ylo.log10()) * lat_h;
    for (v, name) in [
        (0.0, "0"),
        (std::f64::consts::LOG10_2, "50"),
        (1.0, "90"),
        (2.0, "99"),
        (3.0, "99.9"),
        (4.0, "99.99"),
        (5.0, "99.999"),
    ] {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="#e5e7eb"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle" fill="#6b7280" font-size="11">{4}</text>"##,
            px(v),
            lat_top,
            lat_top + lat_h,
            lat_top + lat_h + 16.0,
            name
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#374151">percentile</text>"##,
        lx + lw / 2.0,
        lat_top + lat_h + 36.0
    );
    let mut d = ylo;
    while d <= yhi * 1.0001 {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{1:.1}" x2="{2:.1}" y2="{1:.1}" stroke="#e5e7eb"/><text x="{3:.1}" y="{4:.1}" text-anchor="end" fill="#6b7280" font-size="11">{5}</text>"##,
            lx,
            py(d),
            lx + lw,
            lx - 6.0,
            py(d) + 4.0,
            fmt_ns(d)
        );
        d *= 10.0;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{lx:.1}" y="{lat_top:.1}" width="{lw:.1}" height="{lat_h:.1}" fill="none" stroke="#9ca3af"/>"##
    );
    // Colour by role (as the bars), dash by traffic.
    let mut traffics: Vec<&str> = Vec::new();
    for r in rs {
        if !traffics.contains(&r.traffic.as_str()) {
            traffics.push(&r.traffic);
        }
    }
    for (n, (i, v)) in pts.iter().enumerate() {
        let r = &rs[*i];
        let c = role_color(r.role);
        let t = traffics.iter().position(|t| *t == r.traffic).unwrap_or(0);
        let dash = DASHES[t % DASHES.len()];
        let path: Vec<String> = v
            .iter()
            .map(|&(a, b)| format!("{:.1},{:.1}", px(a), py(b)))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2.2" stroke-linejoin="round" stroke-dasharray="{dash}"/>"##,
            path.join(" ")
        );
        for &(a, b) in v {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.6" fill="{c}"/>"##,
                px(a),
                py(b)
            );
        }
        let ly = lat_top + lat_h + 60.0 + 18.0 * n as f64;
        let l = r.latency_ns.as_ref();
        let _ = writeln!(
            s,
            r##"<line x1="{lx:.1}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="{c}" stroke-width="3" stroke-dasharray="{dash}"/><text x="{2:.1}" y="{3:.1}" fill="#111827" font-size="12">{4} — p50 {5} · p99 {6} · p99.9 {7} · max {8}</text>"##,
            ly,
            lx + 24.0,
            lx + 32.0,
            ly + 4.0,
            esc(&label(r)),
            fmt_ns(l.map(|l| l.p50).unwrap_or(0) as f64),
            fmt_ns(l.map(|l| l.p99).unwrap_or(0) as f64),
            fmt_ns(l.map(|l| l.p99_9).unwrap_or(0) as f64),
            fmt_ns(l.map(|l| l.max).unwrap_or(0) as f64),
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn trim_num(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(37.0, 6.0), 5.0);
        assert_eq!(nice_step(0.8, 4.0), 0.2);
        assert_eq!(trim_num(2.500), "2.5");
    }
}
