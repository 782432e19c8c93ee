//! Constellations: Walker presets (the published Hypatia models), Walker
//! parameters, and constellations read from TLE files.
//!
//! Satellite ids are plane-major: `id = plane * sats_per_plane + slot`.

use crate::time::Epoch;
use crate::tle::{self, Tle, TleError, TleSet, WalkerElements};
use std::fmt;
use std::str::FromStr;

/// WGS72 equatorial radius in metres (the Earth model of SGP4 and Hypatia).
pub const EARTH_RADIUS_M: f64 = 6_378_135.0;

/// Lowest altitude an ISL chord may reach (weather avoidance), in metres.
pub const MIN_ISL_CHORD_ALTITUDE_M: f64 = 80_000.0;

/// Errors building a constellation.
#[derive(Debug, thiserror::Error)]
pub enum ConstellationError {
    /// The preset name is not known.
    #[error("unknown constellation {0:?} (known: starlink-550, kuiper-630, telesat-1015)")]
    UnknownPreset(String),
    /// The TLE input is unusable.
    #[error(transparent)]
    Tle(#[from] TleError),
    /// A Walker grid does not match the number of satellites.
    #[error("{planes} planes x {per_plane} satellites does not match {count} satellites")]
    GridMismatch {
        /// Planes of the grid.
        planes: usize,
        /// Satellites per plane of the grid.
        per_plane: usize,
        /// Satellites actually given.
        count: usize,
    },
    /// The +Grid needs at least 3 planes and 3 satellites per plane.
    #[error("+Grid ISLs need at least 3 planes and 3 satellites per plane")]
    GridTooSmall,
}

/// The three published Hypatia constellations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Starlink shell 1: 72 x 22 at 53.0 deg, 550 km.
    Starlink550,
    /// Kuiper shell 1: 34 x 34 at 51.9 deg, 630 km.
    Kuiper630,
    /// Telesat polar shell: 27 x 13 at 98.98 deg, 1015 km.
    Telesat1015,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [Preset::Starlink550, Preset::Kuiper630, Preset::Telesat1015];

    /// The preset's CLI name, e.g. `starlink-550`.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Starlink550 => "starlink-550",
            Preset::Kuiper630 => "kuiper-630",
            Preset::Telesat1015 => "telesat-1015",
        }
    }

    /// The preset's Walker parameters, as in Hypatia's `main_<preset>.py`.
    pub fn params(self) -> WalkerParams {
        let (nice, planes, per, inc, mm, alt, gsl) = match self {
            Preset::Starlink550 => (
                "Starlink-550",
                72,
                22,
                53.0,
                15.19,
                550_000.0,
                1_089_686.418_2,
            ),
            Preset::Kuiper630 => ("Kuiper-630", 34, 34, 51.9, 14.80, 630_000.0, 1_260_000.0),
            Preset::Telesat1015 => (
                "Telesat-1015",
                27,
                13,
                98.98,
                13.66,
                1_015_000.0,
                5_845_152.0,
            ),
        };
        WalkerParams {
            name: nice.to_string(),
            planes,
            sats_per_plane: per,
            inclination_deg: inc,
            mean_motion_rev_per_day: mm,
            eccentricity: 1e-7,
            arg_perigee_deg: 0.0,
            phase_diff: true,
            altitude_m: alt,
            max_gsl_length_m: gsl,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Preset {
    type Err = ConstellationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == norm)
            .ok_or_else(|| ConstellationError::UnknownPreset(s.to_string()))
    }
}

/// A Walker-delta shell as Hypatia builds it: RAAN of plane `p` is
/// `p * 360 / planes`; mean anomaly of slot `s` is `s * 360 / sats_per_plane`,
/// plus `360 / (2 * sats_per_plane)` on odd planes when `phase_diff` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct WalkerParams {
    /// Name written into the TLE name lines.
    pub name: String,
    /// Number of orbital planes.
    pub planes: usize,
    /// Satellites per plane.
    pub sats_per_plane: usize,
    /// Inclination in degrees.
    pub inclination_deg: f64,
    /// Mean motion in revolutions per day.
    pub mean_motion_rev_per_day: f64,
    /// Eccentricity.
    pub eccentricity: f64,
    /// Argument of perigee in degrees.
    pub arg_perigee_deg: f64,
    /// Shift odd planes by half a slot.
    pub phase_diff: bool,
    /// Nominal altitude in metres (for reporting; ISL usability is checked
    /// on the actual chord).
    pub altitude_m: f64,
    /// Longest usable ground-to-satellite link in metres.
    pub max_gsl_length_m: f64,
}

impl WalkerParams {
    /// The shell's TLEs, satellite `i` named `"<name> <i>"`, epoch
    /// 2000-01-01 00:00:00 UTC.
    pub fn tles(&self) -> Vec<Tle> {
        let mut out = Vec::with_capacity(self.planes * self.sats_per_plane);
        for plane in 0..self.planes {
            let raan = plane as f64 * 360.0 / self.planes as f64;
            let shift = if plane % 2 == 1 && self.phase_diff {
                360.0 / (self.sats_per_plane as f64 * 2.0)
            } else {
                0.0
            };
            for slot in 0..self.sats_per_plane {
                let id = plane * self.sats_per_plane + slot;
                let ma = shift + slot as f64 * 360.0 / self.sats_per_plane as f64;
                out.push(tle::walker_tle(
                    format!("{} {}", self.name, id),
                    &WalkerElements {
                        catalog_number: id as u32 + 1,
                        inclination_deg: self.inclination_deg,
                        raan_deg: raan,
                        eccentricity: self.eccentricity,
                        arg_perigee_deg: self.arg_perigee_deg,
                        mean_anomaly_deg: ma,
                        mean_motion_rev_per_day: self.mean_motion_rev_per_day,
                    },
                ));
            }
        }
        out
    }
}

/// A set of satellites with their element sets, ISLs and GSL range.
#[derive(Clone, Debug)]
pub struct Constellation {
    /// Display name.
    pub name: String,
    /// The instant geometry time `t = 0` refers to.
    pub epoch: Epoch,
    /// One element set per satellite, index = satellite id.
    pub tles: Vec<Tle>,
    /// `(planes, sats_per_plane)` when the satellites form a Walker grid.
    pub grid: Option<(usize, usize)>,
    /// ISLs as `(a, b)` with `a < b`.
    pub isls: Vec<(u32, u32)>,
    /// Longest usable ground-to-satellite link in metres.
    pub max_gsl_length_m: f64,
}

impl Constellation {
    /// A preset exactly as Hypatia generates it, with +Grid ISLs.
    pub fn preset(p: Preset) -> Self {
        let w = p.params();
        Self::walker_unchecked(&w)
    }

    /// A Walker shell with +Grid ISLs.
    pub fn walker(w: &WalkerParams) -> Result<Self, ConstellationError> {
        plus_grid_isls(w.planes, w.sats_per_plane)?;
        Ok(Self::walker_unchecked(w))
    }

    fn walker_unchecked(w: &WalkerParams) -> Self {
        Self {
            name: w.name.clone(),
            epoch: Epoch::y2000(),
            tles: w.tles(),
            grid: Some((w.planes, w.sats_per_plane)),
            isls: grid_isls(w.planes, w.sats_per_plane),
            max_gsl_length_m: w.max_gsl_length_m,
        }
    }

    /// Satellites from a parsed TLE file. `grid` (or the file's Hypatia
    /// header) arranges them plane-major and adds +Grid ISLs; without a grid
    /// there are no ISLs. The epoch (`t = 0`) is the latest element epoch.
    pub fn from_tles(
        set: TleSet,
        grid: Option<(usize, usize)>,
        max_gsl_length_m: f64,
    ) -> Result<Self, ConstellationError> {
        let grid = grid.or(set.grid);
        let mut epoch: Option<Epoch> = None;
        for t in &set.tles {
            t.elements()?;
            let e = t.epoch()?;
            if epoch.is_none_or(|cur| e.days_since(&cur) > 0.0) {
                epoch = Some(e);
            }
        }
        let isls = match grid {
            Some((planes, per_plane)) => {
                if planes.checked_mul(per_plane) != Some(set.tles.len()) {
                    return Err(ConstellationError::GridMismatch {
                        planes,
                        per_plane,
                        count: set.tles.len(),
                    });
                }
                plus_grid_isls(planes, per_plane)?
            }
            None => Vec::new(),
        };
        Ok(Self {
            name: set.tles.first().map(|t| t.name.clone()).unwrap_or_default(),
            epoch: epoch.ok_or(TleError::Empty)?,
            tles: set.tles,
            grid,
            isls,
            max_gsl_length_m,
        })
    }

    /// Number of satellites.
    pub fn len(&self) -> usize {
        self.tles.len()
    }

    /// True if there are no satellites.
    pub fn is_empty(&self) -> bool {
        self.tles.is_empty()
    }
}

/// +Grid ISLs: each satellite to the next slot in its plane and to the same
/// slot in the next plane (wrapping), so 4 per satellite. Pairs are `(a, b)`
/// with `a < b`, in Hypatia's order.
pub fn plus_grid_isls(
    planes: usize,
    per_plane: usize,
) -> Result<Vec<(u32, u32)>, ConstellationError> {
    if planes < 3 || per_plane < 3 {
        return Err(ConstellationError::GridTooSmall);
    }
    Ok(grid_isls(planes, per_plane))
}

fn grid_isls(planes: usize, per_plane: usize) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(2 * planes * per_plane);
    for p in 0..planes {
        for s in 0..per_plane {
            let a = (p * per_plane + s) as u32;
            let same = (p * per_plane + (s + 1) % per_plane) as u32;
            let next = (((p + 1) % planes) * per_plane + s) as u32;
            out.push((a.min(same), a.max(same)));
            out.push((a.min(next), a.max(next)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_have_published_sizes() {
        assert_eq!(Constellation::preset(Preset::Starlink550).len(), 1584);
        assert_eq!(Constellation::preset(Preset::Kuiper630).len(), 1156);
        assert_eq!(Constellation::preset(Preset::Telesat1015).len(), 351);
        assert_eq!(
            Constellation::preset(Preset::Kuiper630).isls.len(),
            2 * 1156
        );
    }

    #[test]
    fn preset_names_parse() {
        assert_eq!("kuiper_630".parse::<Preset>().ok(), Some(Preset::Kuiper630));
        assert!("oneweb".parse::<Preset>().is_err());
    }

    #[test]
    fn odd_planes_are_phase_shifted() {
        let c = Constellation::preset(Preset::Starlink550);
        // Plane 1 slot 0: RAAN 5 deg, mean anomaly 360/44 = 8.1818 deg.
        assert!(c.tles[22]
            .line2
            .contains("   5.0000 0000001   0.0000   8.1818 15.19000000"));
    }
}

#[cfg(test)]
mod tle_file_tests {
    use super::*;

    #[test]
    fn hypatia_tles_file_round_trips() {
        let p = Preset::Telesat1015.params();
        let c = Constellation::preset(Preset::Telesat1015);
        let mut text = format!("{} {}\n", p.planes, p.sats_per_plane);
        for t in &c.tles {
            text.push_str(&format!("{}\n{}\n{}\n", t.name, t.line1, t.line2));
        }
        let set = tle::parse(&text).expect("parses");
        let back = Constellation::from_tles(set, None, p.max_gsl_length_m).expect("builds");
        assert_eq!(back.tles, c.tles);
        assert_eq!(back.isls, c.isls);
        assert_eq!(back.epoch, c.epoch);
        let wrong = tle::parse(&text).expect("parses");
        assert!(matches!(
            Constellation::from_tles(wrong, Some((5, 5)), 1.0),
            Err(ConstellationError::GridMismatch { .. })
        ));
    }

    #[test]
    fn grid_header_too_large_to_multiply_is_a_mismatch() {
        let c = Constellation::preset(Preset::Telesat1015);
        let t = &c.tles[0];
        let text = format!("{} 2\n{}\n{}\n{}\n", usize::MAX, t.name, t.line1, t.line2);
        let set = tle::parse(&text).expect("parses");
        assert_eq!(set.grid, Some((usize::MAX, 2)));
        assert!(matches!(
            Constellation::from_tles(set, None, 1.0),
            Err(ConstellationError::GridMismatch { count: 1, .. })
        ));
    }
}
