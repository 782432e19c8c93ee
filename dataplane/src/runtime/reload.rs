//! Rebuilding the tables from the node's configuration file (on `SIGHUP`)
//! and publishing them, keeping the old tables when the file is broken.
//!
//! SAs whose SPI, direction, key and endpoints are unchanged keep their
//! state (sequence counter, replay window) across reloads: a reload never
//! restarts an outbound sequence, which under AES-GCM would reuse nonces.
//! Only the tables are reloaded; ports, cores, mode and the backend are
//! fixed for the life of the process (a change to them is reported).
//!
//! The file is read on a thread of its own ([`serve_reloads`]), never on
//! the thread that watches the stop flag and publishes stats: however
//! slow the read, `SIGINT` and the stats are not held up by it.

use super::signals::Signals;
use super::table_store::TableStore;
use crate::config::{ConfigError, NodeConfig};
use crate::tables::{SaStore, TableError, Tables};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often [`serve_reloads`] looks for a `SIGHUP`.
pub const RELOAD_POLL: Duration = Duration::from_millis(20);

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
            },
            tables,
        ))
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
        let mut sas = self.sas.clone();
        let tables = Tables::from_config_with(&cfg, store.next_epoch(), &mut sas)
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
        std::thread::sleep(RELOAD_POLL);
    }
}
