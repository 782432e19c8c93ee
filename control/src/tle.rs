//! Two-line element sets: parsing Celestrak's 3-line format and generating
//! the TLEs of a Walker constellation the way Hypatia writes them.
//!
//! Hypatia's generator prints every element with the TLE's own fixed
//! precision (angles to 1e-4 degree, mean motion to 1e-8 rev/day,
//! eccentricity to 1e-7), then propagates the printed lines. Going through
//! the same text here makes the presets carry exactly the same (rounded)
//! elements.

use crate::time::Epoch;

/// Errors reading or building a TLE.
#[derive(Debug, thiserror::Error)]
pub enum TleError {
    /// A line of an element set is not what the format requires.
    #[error("TLE line {line}: {reason}")]
    Format {
        /// 1-based line number in the input text.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The SGP4 element parser rejected a set.
    #[error("TLE for {name:?}: {source}")]
    Elements {
        /// The satellite's name line.
        name: String,
        /// The parser's complaint.
        source: sgp4::TleError,
    },
    /// The epoch field of line 1 does not parse.
    #[error("TLE for {name:?}: unreadable {field}")]
    Epoch {
        /// The satellite's name line.
        name: String,
        /// Which part of the epoch.
        field: &'static str,
    },
    /// The input holds no element set.
    #[error("no TLE in the input")]
    Empty,
}

/// One element set: a name and the two 69-character lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tle {
    /// The satellite's name (Celestrak's line 0, without a leading `0 `).
    pub name: String,
    /// TLE line 1.
    pub line1: String,
    /// TLE line 2.
    pub line2: String,
}

impl Tle {
    /// The element set's epoch, read from line 1 columns 19-32.
    pub fn epoch(&self) -> Result<Epoch, TleError> {
        let bad = |field: &'static str| TleError::Epoch {
            name: self.name.clone(),
            field,
        };
        let year: u32 = self
            .line1
            .get(18..20)
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("epoch year"))?;
        let day: f64 = self
            .line1
            .get(20..32)
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| bad("epoch day"))?;
        Ok(Epoch::from_tle_epoch(year, day))
    }

    /// The parsed orbital elements, ready for SGP4.
    pub fn elements(&self) -> Result<sgp4::Elements, TleError> {
        sgp4::Elements::from_tle(
            Some(self.name.clone()),
            self.line1.as_bytes(),
            self.line2.as_bytes(),
        )
        .map_err(|source| TleError::Elements {
            name: self.name.clone(),
            source,
        })
    }
}

/// A parsed TLE file.
#[derive(Clone, Debug, Default)]
pub struct TleSet {
    /// The element sets in file order; satellite `i` is the `i`-th.
    pub tles: Vec<Tle>,
    /// `(planes, satellites per plane)` when the file starts with Hypatia's
    /// header line `"<planes> <sats per plane>"`.
    pub grid: Option<(usize, usize)>,
}

/// Parses Celestrak's 3-line format (`name`, line 1, line 2, repeated; a
/// name line may start with `0 `). Also accepts plain 2-line sets (named
/// after their catalogue number) and Hypatia's `tles.txt` with its
/// `"<planes> <sats per plane>"` header. Blank lines are ignored.
pub fn parse(text: &str) -> Result<TleSet, TleError> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end()))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut set = TleSet::default();
    let mut i = 0;
    if let Some(&(_, first)) = lines.first() {
        let fields: Vec<&str> = first.split_whitespace().collect();
        if fields.len() == 2 && !first.starts_with("1 ") && !first.starts_with("2 ") {
            if let (Ok(p), Ok(s)) = (fields[0].parse::<usize>(), fields[1].parse::<usize>()) {
                set.grid = Some((p, s));
                i = 1;
            }
        }
    }
    while i < lines.len() {
        let (n, l) = lines[i];
        let (name, l1, l2) = if l.starts_with("1 ") && l.len() == 69 {
            let name = l.get(2..7).unwrap_or("").trim().to_string();
            (name, i, i + 1)
        } else {
            let name = l.strip_prefix("0 ").unwrap_or(l).trim().to_string();
            (name, i + 1, i + 2)
        };
        let (Some(&(n1, line1)), Some(&(n2, line2))) = (lines.get(l1), lines.get(l2)) else {
            return Err(TleError::Format {
                line: n,
                reason: "incomplete element set at end of input".into(),
            });
        };
        for (ln, text, first) in [(n1, line1, '1'), (n2, line2, '2')] {
            if !text.starts_with(first) || text.len() != 69 || !text.is_ascii() {
                return Err(TleError::Format {
                    line: ln,
                    reason: format!(
                        "expected TLE line {first} of 69 ASCII characters, found {text:?}"
                    ),
                });
            }
            if checksum(&text[..68]) != text.as_bytes()[68].wrapping_sub(b'0') {
                return Err(TleError::Format {
                    line: ln,
                    reason: "checksum mismatch".into(),
                });
            }
        }
        set.tles.push(Tle {
            name,
            line1: line1.to_string(),
            line2: line2.to_string(),
        });
        i = l2 + 1;
    }
    if set.tles.is_empty() {
        return Err(TleError::Empty);
    }
    Ok(set)
}

/// The TLE checksum of a line's first 68 characters: digits count their
/// value, `-` counts 1, modulo 10.
pub fn checksum(line68: &str) -> u8 {
    let sum: u32 = line68
        .bytes()
        .map(|b| match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'-' => 1,
            _ => 0,
        })
        .sum();
    (sum % 10) as u8
}

/// Orbital elements of one Walker satellite, in degrees and rev/day.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WalkerElements {
    /// Catalogue number written into the TLE (Hypatia uses `id + 1`).
    pub catalog_number: u32,
    /// Inclination in degrees.
    pub inclination_deg: f64,
    /// Right ascension of the ascending node in degrees.
    pub raan_deg: f64,
    /// Eccentricity (Hypatia uses 1e-7: its propagator refuses 0).
    pub eccentricity: f64,
    /// Argument of perigee in degrees.
    pub arg_perigee_deg: f64,
    /// Mean anomaly in degrees.
    pub mean_anomaly_deg: f64,
    /// Mean motion in revolutions per day.
    pub mean_motion_rev_per_day: f64,
}

/// Writes one Walker satellite as a TLE with epoch 2000-01-01 00:00:00 UTC,
/// no drag, and each element rounded to the TLE field's precision, exactly
/// as Hypatia's manual generator lays the lines out.
pub fn walker_tle(name: String, e: &WalkerElements) -> Tle {
    let cat = e.catalog_number % 100_000;
    let mut line1 =
        format!("1 {cat:05}U 00000ABC 00001.00000000  .00000000  00000-0  00000+0 0    0");
    let ecc = format!("{:.7}", e.eccentricity);
    let ecc = ecc.get(2..).unwrap_or("0000000");
    let mut line2 = format!(
        "2 {cat:05} {:>8} {:>8} {ecc} {:>8} {:>8} {:>11}    0",
        format!("{:.4}", e.inclination_deg),
        format!("{:.4}", e.raan_deg),
        format!("{:.4}", e.arg_perigee_deg),
        format!("{:.4}", e.mean_anomaly_deg),
        format!("{:.8}", e.mean_motion_rev_per_day),
    );
    line1.push(char::from(b'0' + checksum(&line1)));
    line2.push(char::from(b'0' + checksum(&line2)));
    Tle { name, line1, line2 }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISS: &str = "ISS (ZARYA)
1 25544U 98067A   08264.51782528 -.00002182  00000-0 -11606-4 0  2927
2 25544  51.6416 247.4627 0006703 130.5360 325.0288 15.72125391563537
";

    #[test]
    fn parses_celestrak_3le() {
        let set = parse(ISS).expect("valid");
        assert_eq!(set.tles.len(), 1);
        assert_eq!(set.tles[0].name, "ISS (ZARYA)");
        let el = set.tles[0].elements().expect("elements");
        assert_eq!(el.norad_id, 25544);
    }

    #[test]
    fn rejects_bad_checksum() {
        let bad = ISS.replace("2927", "2928");
        assert!(matches!(parse(&bad), Err(TleError::Format { line: 2, .. })));
    }

    #[test]
    fn rejects_non_ascii_line_of_69_bytes() {
        // 67 ASCII characters and a two-byte one: 69 bytes, and byte 68
        // falls inside the last character.
        let l1 = ISS.lines().nth(1).expect("line 1");
        let bad_l1 = format!("{}é", &l1[..67]);
        assert_eq!(bad_l1.len(), 69);
        let text = ISS.replace(l1, &bad_l1);
        match parse(&text) {
            Err(TleError::Format { line: 2, reason }) => {
                assert!(reason.contains("69 ASCII characters"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn walker_tle_has_hypatia_layout() {
        let t = walker_tle(
            "Kuiper-630 35".into(),
            &WalkerElements {
                catalog_number: 36,
                inclination_deg: 51.9,
                raan_deg: 360.0 / 34.0,
                eccentricity: 1e-7,
                arg_perigee_deg: 0.0,
                mean_anomaly_deg: 360.0 / 68.0 + 360.0 / 34.0,
                mean_motion_rev_per_day: 14.8,
            },
        );
        assert_eq!(
            t.line1,
            "1 00036U 00000ABC 00001.00000000  .00000000  00000-0  00000+0 0    02"
        );
        assert_eq!(
            t.line2,
            "2 00036  51.9000  10.5882 0000001   0.0000  15.8824 14.80000000    02"
        );
        let set = parse(&format!("34 34\n{}\n{}\n{}\n", t.name, t.line1, t.line2)).expect("ok");
        assert_eq!(set.grid, Some((34, 34)));
        assert_eq!(set.tles[0].epoch().expect("epoch"), Epoch::y2000());
        t.elements().expect("sgp4 accepts it");
    }
}
