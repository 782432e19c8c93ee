//! The geometry clock: constellation time that every node on a host reads
//! alike, from the wall clock, an anchor and a time scale.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Maps wall-clock time to nanoseconds of geometry time since the anchor
/// (the scheduler's `now_ns`): `(wall - anchor) * scale`.
#[derive(Clone, Copy, Debug)]
pub struct GeometryClock {
    anchor_unix_ns: u128,
    scale: f64,
}

fn unix_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_nanos()
}

impl GeometryClock {
    /// A clock anchored at `anchor_unix_ms` (now when `None`) running
    /// `scale` geometry seconds per wall second.
    pub fn new(anchor_unix_ms: Option<u64>, scale: f64) -> Self {
        let anchor_unix_ns = match anchor_unix_ms {
            Some(ms) => u128::from(ms) * 1_000_000,
            None => unix_ns(),
        };
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        GeometryClock {
            anchor_unix_ns,
            scale,
        }
    }

    /// Geometry nanoseconds since the anchor (0 before it).
    pub fn now_ns(&self) -> u64 {
        let wall = unix_ns().saturating_sub(self.anchor_unix_ns);
        (wall as f64 * self.scale) as u64
    }

    /// The geometry time of Unix time `unix_ns` (0 before the anchor).
    pub fn at_unix_ns(&self, unix_ns: u64) -> u64 {
        let wall = u128::from(unix_ns).saturating_sub(self.anchor_unix_ns);
        (wall as f64 * self.scale) as u64
    }

    /// Wall time until geometry time `at_ns` (zero if it has passed).
    pub fn wall_until(&self, at_ns: u64) -> Duration {
        let now = self.now_ns();
        if at_ns <= now {
            return Duration::ZERO;
        }
        Duration::from_nanos(((at_ns - now) as f64 / self.scale).ceil() as u64)
    }

    /// Geometry seconds per wall second.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster_and_waits_less() {
        let anchor = (unix_ns() / 1_000_000) as u64 - 1_000;
        let c = GeometryClock::new(Some(anchor), 10.0);
        let now = c.now_ns();
        assert!((10_000_000_000..11_000_000_000).contains(&now), "{now}");
        let w = c.wall_until(now + 1_000_000_000);
        assert!(
            w <= Duration::from_millis(101) && w >= Duration::from_millis(90),
            "{w:?}"
        );
        assert_eq!(c.wall_until(0), Duration::ZERO);
        assert_eq!(
            GeometryClock::new(Some(u64::MAX / 2_000_000), 1.0).now_ns(),
            0
        );
    }
}
