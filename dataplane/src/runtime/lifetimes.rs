//! Watching the SAs' lifetimes from the supervising thread: their time
//! limits are ticked here (the workers never read a clock for them), and
//! each soft limit (a rekey request) and hard limit (an expiry) an SA
//! reaches is logged once.
//!
//! A static SA (from the configuration) has no key exchange, so its rekey
//! request is for the operator, and the log says so. An SA negotiated by
//! IKE (`[ike]`) is rekeyed by the node's IKE driver, which watches
//! [`SaLife::rekey_requested`] itself; the log only notes it.
//!
//! [`SaLife::take_report`]: crate::sa::lifetime::SaLife::take_report
//! [`SaLife::rekey_requested`]: crate::sa::lifetime::SaLife::rekey_requested

use crate::sa::lifetime::{Limit, Reached, SaLife, SEQ_MAX_32};
use crate::tables::Tables;
use std::time::Instant;

/// A lifetime level an SA reached, reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LifetimeEvent {
    /// The SA's SPI.
    pub spi: u32,
    /// `out` or `in`.
    pub dir: &'static str,
    /// True for a hard limit (the SA expired), false for a soft one (a
    /// rekey request).
    pub hard: bool,
    /// The limits reached at that level.
    pub reached: Reached,
    /// Sequence numbers the SA had used (outbound), for the message.
    pub seq: Option<u64>,
    /// Negotiated by IKE, which rekeys it.
    pub negotiated: bool,
}

impl std::fmt::Display for LifetimeEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut what = self.reached.to_string();
        if let (true, Some(seq)) = (self.reached.contains(Limit::Sequence), self.seq) {
            what.push_str(&format!(
                ": {} of {SEQ_MAX_32} used, no ESN",
                seq.min(SEQ_MAX_32)
            ));
        }
        if self.hard {
            let reason = if self.reached.iter().all(|k| k == Limit::Sequence) {
                "seq_exhausted"
            } else {
                "sa_expired"
            };
            write!(
                f,
                "SA {}: hard lifetime reached ({what}); the SA has expired and its frames are dropped as {reason}",
                self.spi
            )
        } else if self.negotiated {
            write!(
                f,
                "SA {}: soft lifetime reached ({what}); rekey requested from IKE",
                self.spi
            )
        } else {
            write!(
                f,
                "SA {}: soft lifetime reached ({what}); rekey requested, but this node runs no key exchange \
                 (a static SA): install a new SA (new SPI and key) on both ends before its hard lifetime",
                self.spi
            )
        }
    }
}

/// Ticks the time limits of every SA in `t` at `now` and returns the
/// levels reached since the last look, each once in an SA's life
/// (outbound SAs first, then inbound by SPI).
pub fn sweep(t: &Tables, now: Instant) -> Vec<LifetimeEvent> {
    let mut events = Vec::new();
    let mut look = |spi: u32, dir: &'static str, life: &SaLife, seq: Option<u64>| {
        life.tick(now);
        let r = life.take_report();
        for (hard, reached) in [(false, r.soft), (true, r.hard)] {
            if let Some(reached) = reached {
                events.push(LifetimeEvent {
                    spi,
                    dir,
                    hard,
                    reached,
                    seq,
                    negotiated: t.negotiated.contains(&spi),
                });
            }
        }
    };
    for sa in &t.sa_out {
        look(sa.spi, "out", &sa.life, Some(sa.sent()));
    }
    let mut inbound: Vec<_> = t.sa_in.values().collect();
    inbound.sort_by_key(|i| i.sa.spi);
    for i in inbound {
        look(i.sa.spi, "in", &i.sa.life, None);
    }
    events
}

/// [`sweep`], each event logged: a rekey request at `warn`, an expiry at
/// `error`. Returns how many there were.
pub fn watch(t: &Tables, now: Instant) -> usize {
    let events = sweep(t, now);
    for e in &events {
        if e.hard {
            tracing::error!(spi = e.spi, dir = e.dir, "{e}");
        } else {
            tracing::warn!(spi = e.spi, dir = e.dir, "{e}");
        }
    }
    events.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use std::time::Duration;

    const NODE: &str = "[node]\nname = \"gw\"\nrole = \"gateway\"\n\n\
        [[ports]]\nname = \"lan0\"\nmac = \"02:00:00:00:00:01\"\n\n\
        [[sa]]\nspi = 4097\ndir = \"out\"\naead = \"aes-128-gcm\"\n\
        key = \"000102030405060708090a0b0c0d0e0f01020304\"\n\
        tunnel_src = \"192.0.2.1\"\ntunnel_dst = \"192.0.2.2\"\nesn = true\n\
        lifetime = { soft_packets = 10, hard_packets = 20, hard_seconds = 60 }\n\n\
        [[sa]]\nspi = 4098\ndir = \"in\"\naead = \"aes-128-gcm\"\n\
        key = \"000102030405060708090a0b0c0d0e0f01020304\"\n\
        tunnel_src = \"192.0.2.2\"\ntunnel_dst = \"192.0.2.1\"\n";

    fn tables(text: &str) -> Tables {
        let cfg = NodeConfig::parse(text, "gw.toml").expect("config");
        Tables::from_config(&cfg, 1).expect("tables")
    }

    #[test]
    fn each_level_is_reported_once_with_what_to_do() {
        let t = tables(NODE);
        let now = Instant::now();
        assert_eq!(sweep(&t, now), vec![]);
        t.sa_out[0].life.count(10, 1000);
        let e = sweep(&t, now);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].spi, e[0].dir, e[0].hard), (4097, "out", false));
        let msg = e[0].to_string();
        assert!(
            msg.starts_with("SA 4097: soft lifetime reached (packets); rekey requested"),
            "{msg}"
        );
        assert!(msg.contains("no key exchange"), "{msg}");
        assert_eq!(sweep(&t, now), vec![], "once");
        t.sa_out[0].life.count(10, 1000);
        let e = sweep(&t, now);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].hard);
        assert_eq!(
            e[0].to_string(),
            "SA 4097: hard lifetime reached (packets); the SA has expired and its frames are dropped as sa_expired"
        );
        assert_eq!(sweep(&t, now + Duration::from_secs(61)), vec![], "once");
    }

    #[test]
    fn the_sweep_expires_an_sa_by_its_age() {
        let t = tables(NODE);
        let installed = t.sa_out[0].life.installed();
        assert!(sweep(&t, installed + Duration::from_secs(59)).is_empty());
        assert!(!t.sa_out[0].life.expired());
        let e = sweep(&t, installed + Duration::from_secs(60));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].reached.names(), ["seconds"]);
        assert!(e[0].hard && t.sa_out[0].life.expired());
    }

    #[test]
    fn the_sequence_space_of_an_sa_without_esn_is_named() {
        let t = tables(&NODE.replace(
            "esn = true\nlifetime = { soft_packets = 10, hard_packets = 20, hard_seconds = 60 }\n",
            "",
        ));
        t.sa_out[0].set_last_seq(crate::sa::lifetime::SEQ_SOFT_32 - 5);
        let _ = t.sa_out[0].reserve_seq(32);
        let e = sweep(&t, Instant::now());
        assert_eq!(e.len(), 1);
        assert!(
            e[0].to_string().starts_with(
                "SA 4097: soft lifetime reached (sequence numbers: 4026531867 of 4294967295 used, no ESN); rekey requested"
            ),
            "{}",
            e[0]
        );
        t.sa_out[0].set_last_seq(SEQ_MAX_32 - 3);
        let _ = t.sa_out[0].reserve_seq(32);
        let e = sweep(&t, Instant::now());
        assert!(e[0].hard);
        assert!(
            e[0].to_string().ends_with("dropped as seq_exhausted"),
            "{}",
            e[0]
        );
    }
}
