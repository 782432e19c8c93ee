//! Pieces of the equirectangular world maps that `meshplane routes
//! --svg` and `meshplane emulate --svg` draw: the land, positions in
//! degrees, and text made safe for SVG.

use meshplane_control::propagate::Ecef;
use std::fmt::Write as _;

/// Latitude and longitude in degrees (spherical Earth) of an Earth-fixed
/// position in metres.
pub fn lat_lon(p: &Ecef) -> (f64, f64) {
    let lon = p[1].atan2(p[0]).to_degrees();
    let lat = p[2].atan2((p[0] * p[0] + p[1] * p[1]).sqrt()).to_degrees();
    (lat, lon)
}

/// Text with the characters XML reserves escaped.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Land of Natural Earth 1:110m (public domain), one ring a line: the
/// first point as lon,lat in tenths of a degree, then deltas
/// (`scripts/land-rings.py` made it).
const LAND: &str = include_str!("../data/land-110m.rings");

/// The land rings as (lon, lat) points in degrees; lines that do not
/// parse are skipped (the file is embedded and tested).
fn land_rings() -> impl Iterator<Item = Vec<(f64, f64)>> {
    LAND.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (mut lon, mut lat) = (0i64, 0i64);
            l.split_whitespace()
                .filter_map(|pair| {
                    let (a, b) = pair.split_once(',')?;
                    lon += a.parse::<i64>().ok()?;
                    lat += b.parse::<i64>().ok()?;
                    Some((lon as f64 / 10.0, lat as f64 / 10.0))
                })
                .collect()
        })
}

/// Writes the land as SVG paths (to style with an enclosing group), with
/// `x` and `y` mapping longitude and latitude to the picture.
pub fn land(s: &mut String, x: impl Fn(f64) -> f64, y: impl Fn(f64) -> f64) {
    for ring in land_rings() {
        // Rings that cross the antimeridian are unwrapped into one
        // continuous outline and drawn again a turn to either side (the
        // view clips what falls outside); a ring around the pole is closed
        // along the map's edge.
        let mut pts: Vec<(f64, f64)> = Vec::with_capacity(ring.len() + 2);
        for &(lo, la) in &ring {
            let lo = match pts.last() {
                Some(&(prev, _)) => lo + 360.0 * ((prev - lo) / 360.0).round(),
                None => lo,
            };
            pts.push((lo, la));
        }
        let (Some(&(first, _)), Some(&(last, last_la))) = (pts.first(), pts.last()) else {
            continue;
        };
        if (last - first).abs() > 180.0 {
            let pole = if last_la < 0.0 { -90.0 } else { 90.0 };
            pts.push((last, pole));
            pts.push((first, pole));
        }
        let (lo_min, lo_max) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), &(lo, _)| {
            (a.min(lo), b.max(lo))
        });
        for shift in [-360.0, 0.0, 360.0] {
            if lo_max + shift < -180.0 || lo_min + shift > 180.0 {
                continue;
            }
            let mut d = String::new();
            for (i, (lo, la)) in pts.iter().enumerate() {
                let _ = write!(
                    d,
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { "L" },
                    x(lo + shift),
                    y(*la)
                );
            }
            let _ = writeln!(s, r##"<path d="{d}Z"/>"##);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Even-odd test of a point against one ring (planar, degrees).
    fn inside(ring: &[(f64, f64)], (px, py): (f64, f64)) -> bool {
        let mut c = false;
        for (i, &(x1, y1)) in ring.iter().enumerate() {
            let (x0, y0) = ring[(i + ring.len() - 1) % ring.len()];
            if (y1 > py) != (y0 > py) && px < (x0 - x1) * (py - y1) / (y0 - y1) + x1 {
                c = !c;
            }
        }
        c
    }

    /// The embedded coastline is whole and in the right place: every line
    /// parses, cities are on land and open ocean is not.
    #[test]
    fn the_land_rings_put_cities_on_land_and_oceans_at_sea() {
        let rings: Vec<Vec<(f64, f64)>> = land_rings().collect();
        assert!(rings.len() > 100, "{} rings", rings.len());
        let data_lines = LAND.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(rings.len(), data_lines);
        let land = |p| rings.iter().filter(|r| inside(r, p)).count() % 2 == 1;
        for (name, p) in [
            ("Paris", (2.35, 48.85)),
            ("Kinshasa", (15.3, -4.3)),
            ("Denver", (-104.99, 39.74)),
            ("Ulaanbaatar", (106.9, 47.9)),
            ("Alice Springs", (133.9, -23.7)),
            ("Sao Paulo", (-46.6, -23.5)),
        ] {
            assert!(land(p), "{name} is not on land");
        }
        for (name, p) in [
            ("mid-Atlantic", (-30.0, 30.0)),
            ("Pacific", (-150.0, 0.0)),
            ("Indian Ocean", (80.0, -20.0)),
            ("Tasman Sea", (160.0, -40.0)),
        ] {
            assert!(!land(p), "{name} is on land");
        }
    }
}
