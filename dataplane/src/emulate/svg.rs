//! `meshplane emulate --svg`: one SVG file with the RTT over time of
//! chosen ping flows (every reply, at its request's send time) above a
//! world map (equirectangular: land, a 30-degree graticule) of the load each
//! link carried over the run: a line from end to end, darker and wider
//! with its utilisation, the gateways named. Positions are those of the
//! last epoch's geometry.

use super::report::Report;
use crate::world_map::{self, escape};
use std::fmt::Write as _;

/// Where a node was, for the map.
#[derive(Clone, Debug, PartialEq)]
pub struct MapNode {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

/// One link of the map: its ends' positions and its utilisation (0..1).
#[derive(Clone, Debug, PartialEq)]
pub struct MapLink {
    /// The sending end.
    pub from: MapNode,
    /// The receiving end.
    pub to: MapNode,
    /// Bits sent over the capacity and the run's duration.
    pub utilisation: f64,
}

/// What the map shows: every link that carried a frame, and the gateways.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Map {
    /// Links with their load.
    pub links: Vec<MapLink>,
    /// The gateways, by name.
    pub gateways: Vec<(String, MapNode)>,
}

/// Where an Earth-fixed position in metres is on the map.
pub fn lat_lon(p: [f64; 3]) -> MapNode {
    let (lat, lon) = world_map::lat_lon(&p);
    MapNode { lat, lon }
}

const WIDTH: f64 = 1000.0;
const CHART_H: f64 = 300.0;
const MAP_TOP: f64 = 340.0;
const MAP_H: f64 = 500.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// The picture for `report` (its `pings` hold the RTT samples) with the
/// flows `chosen` (indices into `report.flows`) and `map`.
pub fn render(report: &Report, chosen: &[usize], map: &Map) -> String {
    let mut s = String::new();
    let height = MAP_TOP + MAP_H + 20.0;
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    chart(&mut s, report, chosen);
    world(&mut s, map);
    s.push_str("</svg>\n");
    s
}

/// The RTT chart: x is the run's time (s), y the RTT (ms).
fn chart(s: &mut String, report: &Report, chosen: &[usize]) {
    let (x0, y0, w, h) = (60.0, 30.0, WIDTH - 80.0, CHART_H - 60.0);
    let t_max = (report.totals.sim_s).max(1e-3);
    let series: Vec<(usize, Vec<(f64, f64)>)> = chosen
        .iter()
        .map(|&f| {
            let pts = report
                .pings
                .iter()
                .filter(|p| p.0 as usize == f)
                .map(|p| (p.1 as f64 / 1e9, p.2 as f64 / 1e6))
                .collect();
            (f, pts)
        })
        .collect();
    let all = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (lo, hi) = all.fold((f64::INFINITY, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo.is_finite() {
        let pad = ((hi - lo) * 0.1).max(0.5);
        ((lo - pad).max(0.0), hi + pad)
    } else {
        (0.0, 1.0)
    };
    let x = |t: f64| x0 + t / t_max * w;
    let y = |v: f64| y0 + h - (v - lo) / (hi - lo) * h;
    let _ = writeln!(
        s,
        r#"<text x="{x0}" y="18" font-size="13">RTT of {} flow(s) over the run (ms, at each request's send time)</text>"#,
        series.len()
    );
    let _ = writeln!(
        s,
        r##"<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#888"/>"##
    );
    for i in 0..=5 {
        let v = lo + (hi - lo) * f64::from(i) / 5.0;
        let t = t_max * f64::from(i) / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{v:.1}</text><text x="{:.1}" y="{:.1}" text-anchor="middle">{t:.1} s</text>"#,
            x0 - 4.0,
            y(v) + 4.0,
            x(t),
            y0 + h + 14.0
        );
    }
    for (k, (f, pts)) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let mut line = String::new();
        for &(t, v) in pts {
            let _ = write!(line, "{:.1},{:.1} ", x(t), y(v));
        }
        let _ = writeln!(
            s,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.2" points="{}"/>"#,
            line.trim_end()
        );
        let name = report
            .flows
            .get(*f)
            .map(|fl| format!("{} -> {}", fl.src, fl.dst))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{}</text>"#,
            x0 + 8.0,
            y0 + 14.0 + 13.0 * k as f64,
            escape(&name)
        );
    }
}

/// The world map of link load.
fn world(s: &mut String, map: &Map) {
    let x = |lon: f64| (lon + 180.0) / 360.0 * WIDTH;
    let y = |lat: f64| MAP_TOP + (90.0 - lat) / 180.0 * MAP_H;
    let _ = writeln!(
        s,
        r#"<text x="4" y="{:.1}" font-size="13">Link load over the run (utilisation; positions at the last epoch)</text>"#,
        MAP_TOP - 8.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="0" y="{MAP_TOP}" width="{WIDTH}" height="{MAP_H}" fill="#f4f8fb" stroke="#888"/>"##
    );
    s.push_str(r##"<g fill="#e3e8dc" stroke="#b8c2ad" stroke-width="0.5">"##);
    world_map::land(s, x, y);
    s.push_str("</g>\n");
    for lon in (-150..=150).step_by(30) {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{MAP_TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#dde" stroke-width="0.5"/>"##,
            x(f64::from(lon)),
            MAP_TOP + MAP_H
        );
    }
    for lat in (-60..=60).step_by(30) {
        let _ = writeln!(
            s,
            r##"<line x1="0" y1="{0:.1}" x2="{WIDTH}" y2="{0:.1}" stroke="#dde" stroke-width="0.5"/>"##,
            y(f64::from(lat))
        );
    }
    let peak = map
        .links
        .iter()
        .map(|l| l.utilisation)
        .fold(0.0f64, f64::max)
        .max(1e-12);
    let mut links: Vec<&MapLink> = map.links.iter().collect();
    // The busiest drawn last, on top.
    links.sort_by(|a, b| a.utilisation.total_cmp(&b.utilisation));
    for l in links {
        // A link across the antimeridian would be drawn around the world.
        if (l.from.lon - l.to.lon).abs() > 180.0 {
            continue;
        }
        let r = (l.utilisation / peak).clamp(0.0, 1.0);
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="rgb({},{},{})" stroke-width="{:.2}"><title>{:.4} %</title></line>"#,
            x(l.from.lon),
            y(l.from.lat),
            x(l.to.lon),
            y(l.to.lat),
            (120.0 + 135.0 * r) as u8,
            (150.0 * (1.0 - r)) as u8,
            (200.0 * (1.0 - r)) as u8,
            0.6 + 2.4 * r,
            l.utilisation * 100.0
        );
    }
    for (name, p) in &map.gateways {
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="4" height="4" fill="black"/><text x="{:.1}" y="{:.1}" font-size="9">{}</text>"#,
            x(p.lon) - 2.0,
            y(p.lat) - 2.0,
            x(p.lon) + 4.0,
            y(p.lat) - 3.0,
            escape(name)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="4" y="{:.1}">busiest link {:.4} % of its capacity</text>"#,
        MAP_TOP + MAP_H + 14.0,
        peak * 100.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earth_fixed_axes_are_where_the_map_puts_them() {
        let near = |a: MapNode, lat: f64, lon: f64| {
            assert!(
                (a.lat - lat).abs() < 1e-9 && (a.lon - lon).abs() < 1e-9,
                "{a:?}"
            );
        };
        near(lat_lon([7e6, 0.0, 0.0]), 0.0, 0.0);
        near(lat_lon([0.0, 7e6, 0.0]), 0.0, 90.0);
        near(lat_lon([0.0, 0.0, 7e6]), 90.0, 0.0);
        near(lat_lon([-7e6, 0.0, 0.0]), 0.0, 180.0);
    }
}
