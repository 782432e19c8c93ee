//! Ground stations: CSV `id,name,latitude_deg,longitude_deg,elevation_m`
//! (optionally with that header line), geodetic -> Earth-fixed on WGS72.
//! A name holding a comma or a double quote is written in double quotes,
//! quotes doubled (`"Washington, D.C."`); a row has exactly five fields.
//!
//! Ids must run `0..n` in order: ground station `gid` is node `N + gid` in a
//! constellation of `N` satellites.

use crate::propagate::Ecef;

/// The 100 most populous cities (Hypatia's `top_100` set), the default.
pub const TOP100_CSV: &str = include_str!("../data/ground_stations_top100.csv");

/// WGS72 semi-major axis in metres.
pub const WGS72_A: f64 = 6_378_135.0;
/// WGS72 flattening.
pub const WGS72_F: f64 = 1.0 / 298.26;

/// Errors reading ground stations or looking one up.
#[derive(Debug, thiserror::Error)]
pub enum GroundError {
    /// A CSV line is malformed.
    #[error("ground stations line {line}: {reason}")]
    Format {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No station matches a name or id.
    #[error("unknown ground station {query:?}{}", suggest(.suggestions))]
    Unknown {
        /// What was asked for.
        query: String,
        /// Closest names, best first.
        suggestions: Vec<String>,
    },
    /// A name matches several stations.
    #[error("ground station {query:?} is ambiguous: {}", .matches.join(", "))]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The stations it matches.
        matches: Vec<String>,
    },
    /// The file holds no station.
    #[error("no ground station in the input")]
    Empty,
}

fn suggest(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean: {}?", s.join(", "))
    }
}

/// One ground station (gateway).
#[derive(Clone, Debug, PartialEq)]
pub struct GroundStation {
    /// Ground-station id (`0..n`).
    pub gid: u32,
    /// Name as in the file.
    pub name: String,
    /// Geodetic latitude in degrees.
    pub latitude_deg: f64,
    /// Longitude in degrees.
    pub longitude_deg: f64,
    /// Height above the ellipsoid in metres.
    pub elevation_m: f64,
    /// Earth-fixed position in metres (WGS72).
    pub ecef: Ecef,
}

/// Geodetic coordinates to Earth-fixed Cartesian on the WGS72 ellipsoid
/// (the conversion Hypatia uses for its ground stations).
pub fn geodetic_to_ecef(lat_deg: f64, lon_deg: f64, elevation_m: f64) -> Ecef {
    let e2 = 2.0 * WGS72_F - WGS72_F * WGS72_F;
    let lat = lat_deg.to_radians();
    let lon = lon_deg.to_radians();
    let (slat, clat) = lat.sin_cos();
    let v = WGS72_A / (1.0 - e2 * slat * slat).sqrt();
    [
        (v + elevation_m) * clat * lon.cos(),
        (v + elevation_m) * clat * lon.sin(),
        (v * (1.0 - e2) + elevation_m) * slat,
    ]
}

/// The unit normal of the ellipsoid (local "up") at a geodetic position.
pub fn up_vector(lat_deg: f64, lon_deg: f64) -> Ecef {
    let (slat, clat) = lat_deg.to_radians().sin_cos();
    let (slon, clon) = lon_deg.to_radians().sin_cos();
    [clat * clon, clat * slon, slat]
}

/// A set of ground stations, index = gid.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroundStations {
    /// The stations, `stations[gid].gid == gid`.
    pub stations: Vec<GroundStation>,
}

impl GroundStations {
    /// The embedded top-100 cities.
    pub fn top100() -> Self {
        // The embedded file is part of the crate and tested; an error here
        // would be a build defect, so fall back to an empty set.
        Self::parse_csv(TOP100_CSV).unwrap_or_default()
    }

    /// Parses the CSV text: five fields a row, names with commas quoted
    /// (see the module documentation).
    pub fn parse_csv(text: &str) -> Result<Self, GroundError> {
        let mut stations = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let fields = split_csv_row(l).map_err(|reason| GroundError::Format { line, reason })?;
            let fields: Vec<&str> = fields.iter().map(|f| f.trim()).collect();
            if stations.is_empty() && fields.first().is_some_and(|f| f.eq_ignore_ascii_case("id")) {
                continue;
            }
            if fields.len() != 5 {
                return Err(GroundError::Format {
                    line,
                    reason: format!(
                        "expected 5 fields id,name,latitude_deg,longitude_deg,elevation_m; found {} \
                         (write a name that holds a comma in double quotes)",
                        fields.len()
                    ),
                });
            }
            let name = fields[1];
            if name.is_empty() {
                return Err(GroundError::Format {
                    line,
                    reason: "the name is empty".into(),
                });
            }
            if let Some(c) = name.chars().find(|c| c.is_control()) {
                return Err(GroundError::Format {
                    line,
                    reason: format!(
                        "the name contains the control character U+{:04X}",
                        u32::from(c)
                    ),
                });
            }
            let n = fields.len();
            let num = |idx: usize, what: &str| -> Result<f64, GroundError> {
                fields[idx]
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| GroundError::Format {
                        line,
                        reason: format!("{what} {:?} is not a number", fields[idx]),
                    })
            };
            let gid: u32 = fields[0].parse().map_err(|_| GroundError::Format {
                line,
                reason: format!("id {:?} is not a non-negative integer", fields[0]),
            })?;
            if gid as usize != stations.len() {
                return Err(GroundError::Format {
                    line,
                    reason: format!(
                        "id {gid} out of order: ids must run 0, 1, 2, ... (expected {})",
                        stations.len()
                    ),
                });
            }
            let lat = num(n - 3, "latitude_deg")?;
            let lon = num(n - 2, "longitude_deg")?;
            let ele = num(n - 1, "elevation_m")?;
            if !(-90.0..=90.0).contains(&lat) || !(-180.0..=360.0).contains(&lon) {
                return Err(GroundError::Format {
                    line,
                    reason: format!("coordinates ({lat}, {lon}) out of range"),
                });
            }
            stations.push(GroundStation {
                gid,
                name: name.to_string(),
                latitude_deg: lat,
                longitude_deg: lon,
                elevation_m: ele,
                ecef: geodetic_to_ecef(lat, lon, ele),
            });
        }
        if stations.is_empty() {
            return Err(GroundError::Empty);
        }
        Ok(Self { stations })
    }

    /// Number of stations.
    pub fn len(&self) -> usize {
        self.stations.len()
    }

    /// True if there are no stations.
    pub fn is_empty(&self) -> bool {
        self.stations.is_empty()
    }

    /// Finds a station by gid (`"17"`) or name. Names match ignoring case and
    /// punctuation (`rio de janeiro` finds `Rio-de-Janeiro`), or as a unique
    /// sequence of whole words (`saint petersburg` finds
    /// `Sankt-Peterburg-(Saint-Petersburg)`). Unknown names come back with the
    /// closest names.
    pub fn find(&self, query: &str) -> Result<u32, GroundError> {
        let q = query.trim();
        if let Ok(gid) = q.parse::<u32>() {
            if (gid as usize) < self.len() {
                return Ok(gid);
            }
        }
        let nq = normalize(q);
        if nq.is_empty() {
            return Err(GroundError::Unknown {
                query: query.to_string(),
                suggestions: Vec::new(),
            });
        }
        let norm: Vec<String> = self.stations.iter().map(|s| normalize(&s.name)).collect();
        if let Some(i) = norm.iter().position(|n| *n == nq) {
            return Ok(i as u32);
        }
        let padded = format!(" {nq} ");
        let hits: Vec<usize> = norm
            .iter()
            .enumerate()
            .filter(|(_, n)| format!(" {n} ").contains(&padded))
            .map(|(i, _)| i)
            .collect();
        match hits.len() {
            1 => return Ok(hits[0] as u32),
            0 => {}
            _ => {
                return Err(GroundError::Ambiguous {
                    query: query.to_string(),
                    matches: hits
                        .iter()
                        .map(|&i| format!("{} ({})", self.stations[i].name, i))
                        .collect(),
                })
            }
        }
        let mut scored: Vec<(f64, usize)> = norm
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let whole = strsim::jaro_winkler(&nq, n);
                let best_word = n
                    .split(' ')
                    .map(|w| strsim::jaro_winkler(&nq, w))
                    .fold(0.0, f64::max);
                (whole.max(best_word), i)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Err(GroundError::Unknown {
            query: query.to_string(),
            suggestions: scored
                .iter()
                .take(5)
                .filter(|(s, _)| *s > 0.7)
                .map(|&(_, i)| format!("{} ({})", self.stations[i].name, i))
                .collect(),
        })
    }
}

/// The fields of one CSV row; a field in double quotes may hold commas,
/// and `""` in it stands for one quote.
fn split_csv_row(row: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = row.chars().peekable();
    let mut quoted = false;
    loop {
        match chars.next() {
            None if quoted => return Err("a quoted field is not closed".into()),
            None => {
                fields.push(cur);
                return Ok(fields);
            }
            Some('"') if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                    // Only spaces may follow the closing quote.
                    while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                        chars.next();
                    }
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err("text after a closing quote".into());
                    }
                }
            }
            Some('"') if cur.trim().is_empty() => {
                cur.clear();
                quoted = true;
            }
            Some(',') if !quoted => fields.push(std::mem::take(&mut cur)),
            Some(c) => cur.push(c),
        }
    }
}

/// `field` as one CSV field: quoted (quotes doubled) when it holds a
/// comma or a double quote, as [`GroundStations::parse_csv`] reads it.
pub fn csv_field(field: &str) -> std::borrow::Cow<'_, str> {
    if field.contains([',', '"']) {
        format!("\"{}\"", field.replace('"', "\"\"")).into()
    } else {
        field.into()
    }
}

fn normalize(s: &str) -> String {
    let mapped: String = s
        .chars()
        .map(|c| {
            if c.is_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_top100_parses() {
        let g = GroundStations::top100();
        assert_eq!(g.len(), 100);
        assert_eq!(g.stations[0].name, "Tokyo");
    }

    #[test]
    fn finds_names_loosely() {
        let g = GroundStations::top100();
        assert_eq!(g.find("Manila").ok(), Some(17));
        assert_eq!(g.find("rio de janeiro").ok(), Some(18));
        assert_eq!(g.find("Saint Petersburg").ok(), Some(73));
        assert_eq!(g.find("85").ok(), Some(85));
        match g.find("Manilla") {
            Err(GroundError::Unknown { suggestions, .. }) => {
                assert!(suggestions[0].starts_with("Manila"), "{suggestions:?}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(matches!(
            GroundStations::parse_csv("0,A,1.0,2.0,0\n2,B,1,2,0\n"),
            Err(GroundError::Format { line: 2, .. })
        ));
        assert!(matches!(
            GroundStations::parse_csv("0,A,north,2.0,0\n"),
            Err(GroundError::Format { line: 1, .. })
        ));
        let g = GroundStations::parse_csv(
            "id,name,latitude_deg,longitude_deg,elevation_m\n0,X,0,0,0\n",
        )
        .expect("header accepted");
        assert!((g.stations[0].ecef[0] - WGS72_A).abs() < 1e-6);
    }

    #[test]
    fn extra_columns_are_refused_not_folded_into_the_name() {
        let e = GroundStations::parse_csv("0,London,51.5,-0.1,0\n1,Paris,48.9,2.35,0,35\n")
            .expect_err("six fields");
        assert_eq!(
            e.to_string(),
            "ground stations line 2: expected 5 fields id,name,latitude_deg,longitude_deg,\
             elevation_m; found 6 (write a name that holds a comma in double quotes)"
        );
        for (row, why) in [
            ("0,,1,2,0", "the name is empty"),
            ("0,\"A\u{7}\",1,2,0", "control character U+0007"),
            ("0,\"A,1,2,0", "a quoted field is not closed"),
            ("0,\"A\"B,1,2,0", "text after a closing quote"),
        ] {
            let e = GroundStations::parse_csv(row).expect_err(row);
            assert!(e.to_string().contains(why), "{row}: {e}");
        }
    }

    #[test]
    fn quoted_names_hold_commas_and_quotes_and_round_trip() {
        let name = "Washington, D.C. \"DC\"";
        let row = format!("0,{},38.9,-77.0,10\n", csv_field(name));
        let g = GroundStations::parse_csv(&row).expect("quoted name");
        assert_eq!(g.stations[0].name, name);
        assert_eq!(g.stations[0].elevation_m, 10.0);
        assert_eq!(csv_field("Tokyo"), "Tokyo");
    }
}
