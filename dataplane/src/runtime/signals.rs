//! Process signals for a running node: `SIGINT`/`SIGTERM` stop it (a
//! second one exits at once with status 130, for a shutdown that hangs),
//! `SIGHUP` asks for a configuration reload.
//!
//! The handlers only set atomic flags (`signal-hook`, which registers
//! async-signal-safe handlers without us writing `unsafe` outside the I/O
//! backends); the supervising thread acts on them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Flags the signal handlers raise.
#[derive(Clone, Debug)]
pub struct Signals {
    stop: Arc<AtomicBool>,
    reload: Arc<AtomicBool>,
}

impl Signals {
    /// Installs the handlers for this process.
    pub fn install() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let reload = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so it sees the flag as the previous signal
            // left it: the second signal exits without waiting.
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&stop))?;
            signal_hook::flag::register(sig, Arc::clone(&stop))?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))?;
        Ok(Signals { stop, reload })
    }

    /// The stop flag (raised by `SIGINT`/`SIGTERM`; the runtime polls it).
    pub fn stop_flag(&self) -> &AtomicBool {
        &self.stop
    }

    /// True once, after each `SIGHUP`.
    pub fn take_reload(&self) -> bool {
        self.reload.swap(false, Ordering::Relaxed)
    }
}
