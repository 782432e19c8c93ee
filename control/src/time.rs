//! Time: UTC instants as split Julian dates, and Greenwich mean sidereal time.
//!
//! Geometry is evaluated at "seconds since the constellation epoch" (a plain
//! `f64`); an [`Epoch`] anchors that offset to an absolute UTC instant so that
//! satellites with different element epochs and the Earth's rotation agree.
//! UT1 is taken equal to UTC, as Hypatia does.

/// Seconds in one day.
pub const SECONDS_PER_DAY: f64 = 86_400.0;

/// Julian date of J2000.0 (2000-01-01 12:00:00 TT, used as UT1 here).
pub const JD_J2000: f64 = 2_451_545.0;

/// A UTC instant as a split Julian date: `jd` holds the day (ending in .5 for
/// midnight), `fr` the fraction of day. Keeping them apart preserves
/// sub-millisecond precision over decades.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epoch {
    jd: f64,
    fr: f64,
}

impl Epoch {
    /// The instant `year-month-day hour:minute:second` UTC (Gregorian calendar,
    /// 1900..2100).
    pub fn from_utc(year: i32, month: u32, day: u32, hour: u32, minute: u32, second: f64) -> Self {
        let y = f64::from(year);
        let m = f64::from(month);
        let jd = 367.0 * y - (7.0 * (y + ((m + 9.0) / 12.0).floor()) * 0.25).floor()
            + (275.0 * m / 9.0).floor()
            + f64::from(day)
            + 1_721_013.5;
        let fr = (second + f64::from(minute) * 60.0 + f64::from(hour) * 3600.0) / SECONDS_PER_DAY;
        Self { jd, fr }.normalized()
    }

    /// 2000-01-01 00:00:00 UTC: the epoch of every Walker preset (as in Hypatia,
    /// where the TLE epoch field reads `00001.00000000`).
    pub fn y2000() -> Self {
        Self::from_utc(2000, 1, 1, 0, 0, 0.0)
    }

    /// The instant from a TLE epoch: two-digit year (57..99 -> 19xx, else 20xx)
    /// and day of year with fraction (1.0 = 1 January 00:00).
    pub fn from_tle_epoch(two_digit_year: u32, day_of_year: f64) -> Self {
        let year = if two_digit_year < 57 {
            2000 + two_digit_year as i32
        } else {
            1900 + two_digit_year as i32
        };
        let start = Self::from_utc(year, 1, 1, 0, 0, 0.0);
        let whole = (day_of_year - 1.0).floor();
        Self {
            jd: start.jd + whole,
            fr: start.fr + (day_of_year - 1.0 - whole),
        }
        .normalized()
    }

    /// This instant shifted by `seconds` (may be negative).
    pub fn plus_seconds(&self, seconds: f64) -> Self {
        Self {
            jd: self.jd,
            fr: self.fr + seconds / SECONDS_PER_DAY,
        }
        .normalized()
    }

    /// Days from `earlier` to `self` (negative if `self` is before it).
    pub fn days_since(&self, earlier: &Epoch) -> f64 {
        (self.jd - earlier.jd) + (self.fr - earlier.fr)
    }

    /// The Julian date as one number (loses sub-millisecond precision).
    pub fn julian_date(&self) -> f64 {
        self.jd + self.fr
    }

    /// Greenwich mean sidereal time in radians, `[0, 2*pi)`, by the IAU-82
    /// expression (Vallado's `gstime`), with UT1 = UTC.
    pub fn gmst_rad(&self) -> f64 {
        let tut1 = ((self.jd - JD_J2000) + self.fr) / 36_525.0;
        let seconds = -6.2e-6 * tut1 * tut1 * tut1
            + 0.093_104 * tut1 * tut1
            + (876_600.0 * 3600.0 + 8_640_184.812_866) * tut1
            + 67_310.548_41;
        (seconds * std::f64::consts::PI / 180.0 / 240.0).rem_euclid(std::f64::consts::TAU)
    }

    fn normalized(self) -> Self {
        let carry = self.fr.floor();
        Self {
            jd: self.jd + carry,
            fr: self.fr - carry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn y2000_is_jd_2451544_5() {
        assert_eq!(Epoch::y2000().julian_date(), 2_451_544.5);
        assert_eq!(Epoch::from_tle_epoch(0, 1.0), Epoch::y2000());
    }

    #[test]
    fn gmst_matches_vallado_example() {
        // Vallado, Fundamentals of Astrodynamics, example 3-5:
        // 1992-08-20 12:14:00 UT1 -> GMST 152.578787886 deg.
        let e = Epoch::from_utc(1992, 8, 20, 12, 14, 0.0);
        let deg = e.gmst_rad().to_degrees();
        assert!((deg - 152.578_787_886).abs() < 1e-6, "{deg}");
    }

    #[test]
    fn shifting_keeps_precision() {
        let e = Epoch::y2000().plus_seconds(32.9);
        assert!((e.days_since(&Epoch::y2000()) * SECONDS_PER_DAY - 32.9).abs() < 1e-9);
    }
}
