//! Satellite positions: SGP4 (WGS72, AFSPC-compatible mode) in TEME, rotated
//! into the Earth-fixed frame by Greenwich mean sidereal time.

use crate::constellation::Constellation;
use crate::tle::TleError;

/// Errors propagating satellites.
#[derive(Debug, thiserror::Error)]
pub enum PropagateError {
    /// The element set cannot be turned into SGP4 constants.
    #[error("satellite {sat}: {source}")]
    Elements {
        /// Satellite id.
        sat: u32,
        /// SGP4's complaint.
        source: sgp4::ElementsError,
    },
    /// The element set does not parse.
    #[error(transparent)]
    Tle(#[from] TleError),
    /// SGP4 failed at the requested time (e.g. the orbit decayed).
    #[error("satellite {sat} at t = {t_s} s: {source}")]
    Propagation {
        /// Satellite id.
        sat: u32,
        /// Seconds since the constellation epoch.
        t_s: f64,
        /// SGP4's complaint.
        source: sgp4::Error,
    },
    /// SGP4 gave no finite position: the time lies far outside what the
    /// elements describe.
    #[error(
        "satellite {sat} at t = {t_s} s: no finite position (time far outside the elements' range)"
    )]
    NotFinite {
        /// Satellite id.
        sat: u32,
        /// Seconds since the constellation epoch.
        t_s: f64,
    },
}

/// A position in metres in the Earth-fixed (ECEF) frame.
pub type Ecef = [f64; 3];

/// Propagates every satellite of a constellation.
pub struct Propagator {
    constants: Vec<sgp4::Constants>,
    /// Minutes from each satellite's element epoch to the constellation epoch.
    offset_min: Vec<f64>,
    epoch: crate::time::Epoch,
}

impl Propagator {
    /// Prepares SGP4 constants for every satellite (WGS72, AFSPC mode).
    pub fn new(c: &Constellation) -> Result<Self, PropagateError> {
        let mut constants = Vec::with_capacity(c.len());
        let mut offset_min = Vec::with_capacity(c.len());
        for (i, t) in c.tles.iter().enumerate() {
            let el = t.elements()?;
            let k =
                sgp4::Constants::from_elements_afspc_compatibility_mode(&el).map_err(|source| {
                    PropagateError::Elements {
                        sat: i as u32,
                        source,
                    }
                })?;
            constants.push(k);
            offset_min.push(c.epoch.days_since(&t.epoch()?) * 1440.0);
        }
        Ok(Self {
            constants,
            offset_min,
            epoch: c.epoch,
        })
    }

    /// Number of satellites.
    pub fn len(&self) -> usize {
        self.constants.len()
    }

    /// True if there are no satellites.
    pub fn is_empty(&self) -> bool {
        self.constants.is_empty()
    }

    /// TEME position of satellite `sat` in metres at `t_s` seconds after the
    /// constellation epoch.
    pub fn teme(&self, sat: usize, t_s: f64) -> Result<Ecef, PropagateError> {
        let (Some(k), Some(off)) = (self.constants.get(sat), self.offset_min.get(sat)) else {
            return Err(PropagateError::Tle(TleError::Empty));
        };
        let p = k
            .propagate_afspc_compatibility_mode(sgp4::MinutesSinceEpoch(off + t_s / 60.0))
            .map_err(|source| PropagateError::Propagation {
                sat: sat as u32,
                t_s,
                source,
            })?;
        let m = p.position.map(|km| km * 1000.0);
        if !m.iter().all(|v| v.is_finite()) {
            return Err(PropagateError::NotFinite {
                sat: sat as u32,
                t_s,
            });
        }
        Ok(m)
    }

    /// Earth-fixed positions of all satellites in metres at `t_s` seconds
    /// after the constellation epoch, written into `out` (resized).
    pub fn ecef_all(&self, t_s: f64, out: &mut Vec<Ecef>) -> Result<(), PropagateError> {
        let gmst = self.epoch.plus_seconds(t_s).gmst_rad();
        let (s, c) = gmst.sin_cos();
        out.clear();
        out.reserve(self.len());
        for i in 0..self.len() {
            let [x, y, z] = self.teme(i, t_s)?;
            out.push([c * x + s * y, -s * x + c * y, z]);
        }
        Ok(())
    }
}

/// Squared distance between two points.
#[inline]
pub fn dist2(a: &Ecef, b: &Ecef) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    let dz = a[2] - b[2];
    dx * dx + dy * dy + dz * dz
}

/// Distance between two points.
#[inline]
pub fn dist(a: &Ecef, b: &Ecef) -> f64 {
    dist2(a, b).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::constellation::{Constellation, Preset};

    #[test]
    fn starlink_altitude_is_about_550_km() {
        let c = Constellation::preset(Preset::Starlink550);
        let p = Propagator::new(&c).expect("constants");
        let mut pos = Vec::new();
        p.ecef_all(0.0, &mut pos).expect("propagate");
        for q in &pos {
            let r = dist(q, &[0.0; 3]);
            let alt = r - crate::constellation::EARTH_RADIUS_M;
            assert!((500_000.0..600_000.0).contains(&alt), "{alt}");
        }
    }

    #[test]
    fn a_time_beyond_the_elements_is_an_error_not_nan_positions() {
        let c = Constellation::preset(Preset::Kuiper630);
        let p = Propagator::new(&c).expect("constants");
        let mut pos = Vec::new();
        for t in [1e300, -1e300] {
            match p.ecef_all(t, &mut pos) {
                Err(
                    e @ (PropagateError::NotFinite { .. } | PropagateError::Propagation { .. }),
                ) => {
                    assert!(e.to_string().contains("satellite 0"), "{e}")
                }
                other => panic!("t = {t}: {other:?}"),
            }
        }
    }
}
