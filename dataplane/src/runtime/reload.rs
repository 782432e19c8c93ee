//! Rebuilding the tables from the node's configuration file (on `SIGHUP`)
//! and publishing them, keeping the old tables when the file is broken.
//!
//! SAs whose SPI, direction, key and endpoints are unchanged keep their
//! state (sequence counter, replay window, packet and byte counts, age)
//! across reloads: a reload never restarts an outbound sequence, which
//! under AES-GCM would reuse nonces. Their lifetime limits become the ones
//! the file gives now; a limit already reached stays reached, and an
//! expired SA stays expired (a new key makes a new SA).
//! Only the tables are reloaded; ports, cores, mode and the backend are
//! fixed for the life of the process (a change to them is reported).
//!
//! The file is read on a thread of its own ([`serve_reloads`]), never on
//! the thread that watches the stop flag and publishes stats: however
//! slow the read, `SIGINT` and the stats are not held up by it.
//!
//! On a gateway with `[ike]`, this is also where the SAs IKE negotiates
//! enter the tables ([`ConfigReloader::with_ike`]): the reloader is the
//! node's one publisher, and every table it builds is the file's with the
//! negotiated SAs merged in, republished whenever that set changes.

use super::signals::Signals;
use super::table_store::TableStore;
use crate::config::{ConfigError, NodeConfig};
use crate::control::ike::{IkeMerge, IkeShare};
use crate::tables::{SaStore, TableError, Tables};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often [`serve_reloads`] looks for a `SIGHUP`.
pub const RELOAD_POLL: Duration = Duration::from_millis(20);

/// How often it looks for a change in IKE's SAs, on a gateway with `[ike]`.
pub const IKE_POLL: Duration = crate::control::ike::PUBLISH_POLL;

/// A reload was refused; the old tables stay installed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not parse or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The tables could not be built.
    #[error("{0}: building tables: {1}")]
    Tables(String, TableError),
    /// The ports changed, which needs a restart.
    #[error("{0}: the ports changed ({1:?} -> {2:?}); restart the node to change ports")]
    Ports(String, Vec<String>, Vec<String>),
}

/// Builds a node's tables from its file and republishes them on demand.
pub struct ConfigReloader {
    path: PathBuf,
    running: NodeConfig,
    sas: SaStore,
    /// The SAs IKE negotiated.
    ike: Option<IkeMerge>,
}

impl ConfigReloader {
    /// Reads `path` and builds the first tables (epoch 1).
    pub fn load(path: &Path) -> Result<(Self, Tables), ReloadError> {
        let cfg = NodeConfig::load(path)?;
        Self::from_config(path, cfg)
    }

    /// Like `load`, for a configuration already read from `path`.
    pub fn from_config(path: &Path, cfg: NodeConfig) -> Result<(Self, Tables), ReloadError> {
        let mut sas = SaStore::default();
        let tables = Tables::from_config_with(&cfg, 1, &mut sas)
            .map_err(|e| ReloadError::Tables(path.display().to_string(), e))?;
        Ok((
            ConfigReloader {
                path: path.to_path_buf(),
                running: cfg,
                sas,
                ike: None,
            },
            tables,
        ))
    }

    /// Merges the SAs in `share` into every table built from now on.
    pub fn with_ike(mut self, share: Arc<IkeShare>) -> Self {
        self.ike = Some(IkeMerge::new(share));
        self
    }

    /// `cfg` with IKE's SAs merged in, if the node has `[ike]`.
    fn merged(&mut self, cfg: &NodeConfig) -> NodeConfig {
        match &mut self.ike {
            Some(m) => m.apply(cfg),
            None => cfg.clone(),
        }
    }

    /// Republishes the tables when IKE's SA set changed since the last
    /// publication; the new epoch, if it did.
    pub fn republish_negotiated(&mut self, store: &TableStore) -> Option<Result<u64, ReloadError>> {
        if !self.ike.as_ref()?.changed() {
            return None;
        }
        let cfg = self.merged(&self.running.clone());
        let mut sas = self.sas.clone();
        Some(
            Tables::from_config_with(&cfg, store.next_epoch(), &mut sas)
                .map_err(|e| ReloadError::Tables(self.path.display().to_string(), e))
                .map(|tables| {
                    self.sas = sas;
                    store.publish(tables)
                }),
        )
    }

    /// The configuration the running tables came from.
    pub fn config(&self) -> &NodeConfig {
        &self.running
    }

    /// Re-reads the file and publishes its tables into `store`; returns the
    /// new epoch. On error nothing changes.
    pub fn reload(&mut self, store: &TableStore) -> Result<u64, ReloadError> {
        let file = self.path.display().to_string();
        let cfg = NodeConfig::load(&self.path)?;
        let names = |c: &NodeConfig| c.ports.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        if names(&cfg) != names(&self.running) {
            return Err(ReloadError::Ports(file, names(&self.running), names(&cfg)));
        }
        if cfg.cores != self.running.cores
            || cfg.mode != self.running.mode
            || cfg.idle != self.running.idle
            || cfg.io.backend != self.running.io.backend
        {
            tracing::warn!(
                "{file}: cores, mode, idle or backend changed; they take effect at the next start \
                 (tables reloaded now)"
            );
        }
        // Build against a copy of the SA state, so that a failure leaves
        // the running SAs' state untouched.
        if cfg.ike != self.running.ike {
            tracing::warn!("{file}: [ike] changed; it takes effect at the next start");
        }
        let mut sas = self.sas.clone();
        let merged = self.merged(&cfg);
        let tables = Tables::from_config_with(&merged, store.next_epoch(), &mut sas)
            .map_err(|e| ReloadError::Tables(file, e))?;
        let epoch = store.publish(tables);
        self.sas = sas;
        self.running = cfg;
        Ok(epoch)
    }
}

/// Applies a reload after each `SIGHUP` until `done` is raised, logging
/// the outcome; meant to run on a thread of its own. With `frozen` set
/// (the node's routes come from its control plane), a `SIGHUP` is
/// reported and ignored: static tables alone would drop the computed
/// routes.
pub fn serve_reloads(
    reloader: &mut ConfigReloader,
    store: &TableStore,
    signals: &Signals,
    done: &AtomicBool,
    frozen: bool,
) {
    while !done.load(Ordering::Relaxed) {
        if signals.take_reload() {
            let file = reloader.path.display().to_string();
            let old = store.epoch();
            if frozen {
                tracing::warn!(
                    "SIGHUP ignored: {file} has [control]; restart the node to change its configuration"
                );
            } else {
                match reloader.reload(store) {
                    Ok(epoch) => tracing::info!(
                        "SIGHUP: tables reloaded from {file} (epoch {old} -> {epoch})"
                    ),
                    Err(e) => tracing::error!("SIGHUP: reload refused, keeping epoch {old}: {e}"),
                }
            }
        }
        match reloader.republish_negotiated(store) {
            Some(Ok(epoch)) => tracing::debug!(epoch, "tables republished with IKE's SAs"),
            Some(Err(e)) => tracing::error!("IKE's SAs not published: {e}"),
            None => {}
        }
        // IKE's datagrams wait for their SAs' publication: look often.
        std::thread::sleep(if reloader.ike.is_some() {
            IKE_POLL
        } else {
            RELOAD_POLL
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sa::lifetime::LifeState;

    const BASE: &str = "[node]\nname = \"gw\"\nrole = \"gateway\"\n\n\
        [[ports]]\nname = \"lan0\"\nmac = \"02:00:00:00:00:01\"\n\n\
        [[sa]]\nspi = 4097\ndir = \"out\"\naead = \"aes-128-gcm\"\n\
        key = \"000102030405060708090a0b0c0d0e0f01020304\"\n\
        tunnel_src = \"192.0.2.1\"\ntunnel_dst = \"192.0.2.2\"\nesn = true\n";

    #[test]
    fn a_reload_keeps_an_sas_counts_and_applies_its_new_lifetime() {
        let dir = std::env::temp_dir().join(format!("mp-reload-life-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("gw.toml");
        std::fs::write(
            &path,
            format!("{BASE}lifetime = {{ hard_packets = 1000 }}\n"),
        )
        .expect("write");
        let (mut reloader, tables) = ConfigReloader::load(&path).expect("load");
        let sa = tables.sa_out[0].clone();
        let store = TableStore::new(tables);
        sa.life.count(600, 60_000);
        assert_eq!(sa.life.state(), LifeState::Active);

        // A soft limit the SA has already passed is reached at once.
        std::fs::write(
            &path,
            format!("{BASE}lifetime = {{ soft_packets = 500, hard_packets = 2000 }}\n"),
        )
        .expect("write");
        reloader.reload(&store).expect("reload");
        let now = store.load_full();
        assert!(std::sync::Arc::ptr_eq(&now.sa_out[0], &sa), "same SA");
        assert_eq!(sa.life.packets(), 600);
        assert_eq!(sa.life.lifetime().hard.packets, Some(2000));
        assert_eq!(sa.life.state(), LifeState::SoftReached);

        // A new key is a new SA, with a fresh count.
        std::fs::write(&path, BASE.replace("01020304\"", "01020305\"")).expect("write");
        reloader.reload(&store).expect("reload");
        let now = store.load_full();
        assert!(!std::sync::Arc::ptr_eq(&now.sa_out[0], &sa));
        assert_eq!(now.sa_out[0].life.packets(), 0);
        assert_eq!(now.sa_out[0].life.state(), LifeState::Active);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_negotiated_sas_are_merged_into_every_publication_and_keep_their_state() {
        use crate::config::{AeadAlg, SaConfig, SaDir};
        use crate::control::ike::{IkeShare, NegotiatedSas};
        use std::net::Ipv4Addr;
        let dir = std::env::temp_dir().join(format!("mp-reload-ike-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("gw.toml");
        let text = "[node]\nname = \"gw\"\nrole = \"gateway\"\n\n\
            [[ports]]\nname = \"up0\"\nmac = \"02:00:00:00:00:01\"\n\n\
            [[fec]]\nprefix = \"10.2.0.0/16\"\npeer = \"192.0.2.2\"\nlabel = 1002\n\
            port = \"up0\"\nnext_hop_mac = \"02:00:00:00:01:01\"\n\n\
            [ike]\naddress = \"192.0.2.1\"\nidentity = \"gw\"\npsk_file = \"psk\"\n\n\
            [[ike.peer]]\naddress = \"192.0.2.2\"\nidentity = \"gw-b\"\n";
        std::fs::write(&path, text).expect("write");
        let (reloader, tables) = ConfigReloader::load(&path).expect("load");
        assert_eq!(tables.fecs[0].sa, crate::tables::SA_PENDING);
        let share = Arc::new(IkeShare::default());
        let mut reloader = reloader.with_ike(share.clone());
        let store = TableStore::new(tables);
        // The first look publishes (an empty set); then only on change.
        assert!(reloader.republish_negotiated(&store).is_some());
        assert!(reloader.republish_negotiated(&store).is_none());

        let out = SaConfig {
            spi: 0x2222,
            dir: SaDir::Out,
            aead: AeadAlg::Aes128Gcm,
            key: zeroize::Zeroizing::new(vec![7; 20]),
            tunnel_src: Ipv4Addr::new(192, 0, 2, 1),
            tunnel_dst: Ipv4Addr::new(192, 0, 2, 2),
            esn: true,
            udp_encap: false,
            lifetime: crate::sa::Lifetime::NONE,
            peer: None,
            negotiated: true,
        };
        share.set(NegotiatedSas {
            sas: vec![out],
            out: [(Ipv4Addr::new(192, 0, 2, 2), 0x2222)].into(),
        });
        let epoch = reloader
            .republish_negotiated(&store)
            .expect("changed")
            .expect("published");
        let t = store.load_full();
        assert_eq!(t.epoch, epoch);
        let sa = t.sa_out[t.fecs[0].sa as usize].clone();
        assert_eq!(sa.spi, 0x2222);
        let _ = sa.reserve_seq(10);

        // A SIGHUP reload keeps the negotiated SA, and its sequence.
        reloader.reload(&store).expect("reload");
        let t = store.load_full();
        assert!(Arc::ptr_eq(&t.sa_out[t.fecs[0].sa as usize], &sa));
        assert_eq!(sa.sent(), 10);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
