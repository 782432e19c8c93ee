//! `meshplane keys`: the constellation's notice keys. One Ed25519 key per
//! node (each node signs the link-state notices it originates with its
//! own) and one trust file with every node's public key (each node checks
//! every notice against it). Give each node its own key file and a copy
//! of the trust file; no node ever needs another's private key.
//!
//! ```text
//! meshplane keys --constellation starlink-550 --out-dir /etc/meshplane/keys
//! meshplane keys --constellation starlink-550 --nodes 0-1583 --out-dir keys
//! ```
//!
//! Writes `node-ID.key` (mode 0600) per node and `trust`.

use crate::control::keys::{NodeKey, TrustStore};
use anyhow::{bail, Context};
use meshplane_control::{Constellation, GroundStations, Preset};
use std::path::PathBuf;

/// Arguments of `meshplane keys`.
#[derive(clap::Args, Debug)]
pub struct KeysArgs {
    /// Constellation preset: starlink-550, kuiper-630 or telesat-1015.
    #[arg(long, default_value = "starlink-550")]
    pub constellation: String,
    /// Ground stations CSV (default: the embedded top 100).
    #[arg(long, value_name = "FILE")]
    pub ground_stations: Option<PathBuf>,
    /// Node ids to make keys for: `all`, or ids and ranges (`0-1583,1600`).
    #[arg(long, default_value = "all", value_name = "LIST")]
    pub nodes: String,
    /// Where to write the key files and the trust file.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Replace keys already in the directory.
    #[arg(long)]
    pub force: bool,
}

/// The node ids `list` names, each below `n`.
pub fn parse_nodes(list: &str, n: u32) -> Result<Vec<u32>, String> {
    if list.trim() == "all" {
        return Ok((0..n).collect());
    }
    let mut out = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let id = |s: &str| {
            s.trim()
                .parse::<u32>()
                .ok()
                .filter(|&v| v < n)
                .ok_or_else(|| format!("{s:?} is not a node id below {n}"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (id(a)?, id(b)?);
                if a > b {
                    return Err(format!("range {part:?} runs backwards"));
                }
                out.extend(a..=b);
            }
            None => out.push(id(part)?),
        }
    }
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        return Err("no node ids".into());
    }
    Ok(out)
}

/// Makes a key for each of `ids` into `dir` (`node-ID.key`, mode 0600) and
/// the trust file (`trust`); returns the trust store.
pub fn write_keys(dir: &std::path::Path, ids: &[u32], force: bool) -> anyhow::Result<TrustStore> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let trust_path = dir.join("trust");
    if trust_path.exists() && !force {
        bail!(
            "{} exists: keys are already there (--force replaces them, and every node then needs its new key)",
            trust_path.display()
        );
    }
    let mut trust = TrustStore::default();
    for &id in ids {
        let (key, doc) = NodeKey::generate()?;
        trust.insert(id, key.public());
        super::mesh::write_private(
            &dir.join(format!("node-{id}.key")),
            &format!("{}\n", doc.as_str()),
        )?;
    }
    std::fs::write(&trust_path, trust.render())
        .with_context(|| format!("writing {}", trust_path.display()))?;
    Ok(trust)
}

/// Runs `meshplane keys`.
pub fn run(a: &KeysArgs) -> anyhow::Result<()> {
    let preset: Preset = a
        .constellation
        .parse()
        .map_err(|e| anyhow::anyhow!("--constellation: {e}"))?;
    let n_sats = Constellation::preset(preset).len() as u32;
    let stations = match &a.ground_stations {
        Some(p) => GroundStations::parse_csv(
            &crate::file_read::read_text(p, crate::file_read::DATA_LIMIT)
                .with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| p.display().to_string())?,
        None => GroundStations::top100(),
    };
    let n = n_sats.saturating_add(stations.stations.len() as u32);
    let ids = parse_nodes(&a.nodes, n).map_err(|e| anyhow::anyhow!("--nodes: {e}"))?;
    let trust = write_keys(&a.out_dir, &ids, a.force)?;
    crate::outln!(
        "{} keys (satellites 0..{n_sats}, ground stations from {n_sats}) in {}; trust file {}",
        trust.len(),
        a.out_dir.display(),
        a.out_dir.join("trust").display()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_lists_take_ids_and_ranges_and_refuse_the_rest() {
        assert_eq!(parse_nodes("all", 3), Ok(vec![0, 1, 2]));
        assert_eq!(parse_nodes("5, 1-3,2", 10), Ok(vec![1, 2, 3, 5]));
        assert!(parse_nodes("10", 10).is_err());
        assert!(parse_nodes("3-1", 10).is_err());
        assert!(parse_nodes("x", 10).is_err());
        assert!(parse_nodes("", 10).is_err());
    }
}
