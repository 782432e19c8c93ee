//! Time the measuring thread actually ran on a CPU.
//!
//! On a shared machine the scheduler takes the core away for whole ticks;
//! wall-clock rates then measure the neighbours as much as the data plane.
//! Frames per on-CPU second is the per-core figure that stays put, and the
//! ratios between measurements use it. The thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) is read outside the measured loop.

use cpu_time::ThreadTime;

/// Measures the on-CPU time of the current thread since `start`.
#[derive(Clone, Copy, Debug)]
pub struct CpuClock(Option<ThreadTime>);

impl CpuClock {
    /// Starts counting.
    pub fn start() -> CpuClock {
        CpuClock(ThreadTime::try_now().ok())
    }

    /// On-CPU seconds since `start`, or `None` without a thread CPU clock.
    pub fn secs(&self) -> Option<f64> {
        let d = self.0?.try_elapsed().ok()?.as_secs_f64();
        (d > 0.0).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_cpu_time_advances_while_spinning() {
        let c = CpuClock::start();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(20) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let s = c.secs().expect("thread CPU clock on Linux");
        assert!(s > 0.0 && s <= t.elapsed().as_secs_f64() + 0.001, "{s}");
    }
}
