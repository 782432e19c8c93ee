//! The node's last words: between the stop (a signal, the end of a timed
//! run) and its workers' end, the service thread may still send (IKE's
//! DELETEs, so that peers remove their SAs at once), through the workers'
//! inject queues. The supervisor asks, waits until the service thread says
//! it is done or [`FAREWELL_MAX`] has passed, then stops the workers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The longest the workers wait for the node's last words.
pub const FAREWELL_MAX: Duration = Duration::from_millis(500);

/// The handshake between the supervisor and the service thread.
#[derive(Debug, Default)]
pub struct Farewell {
    asked: AtomicBool,
    done: AtomicBool,
}

impl Farewell {
    /// The supervisor: the node stops, say what is to be said.
    pub fn ask(&self) {
        self.asked.store(true, Ordering::Release);
    }

    /// Whether the node was asked to say its last words.
    pub fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    /// The service thread: said and handed to the workers.
    pub fn finish(&self) {
        self.done.store(true, Ordering::Release);
    }

    /// Whether the service thread is done.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Asks, and waits until done or `max` has passed; true if done.
    pub fn ask_and_wait(&self, max: Duration) -> bool {
        self.ask();
        let until = Instant::now() + max;
        while !self.is_done() {
            if Instant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_ends_when_done_or_at_the_limit() {
        let f = Farewell::default();
        assert!(!f.asked());
        let t = Instant::now();
        assert!(!f.ask_and_wait(Duration::from_millis(20)), "nobody answers");
        assert!(f.asked() && t.elapsed() >= Duration::from_millis(20));
        std::thread::scope(|s| {
            s.spawn(|| {
                while !f.asked() {
                    std::thread::yield_now();
                }
                f.finish();
            });
            assert!(f.ask_and_wait(Duration::from_secs(10)));
        });
    }
}
