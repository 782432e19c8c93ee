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
//!
//! With `--ike-ca DIR --gateways gw0,gw1,...` it also (or only, without
//! `--out-dir`) issues the IKEv2 credentials: a constellation CA
//! (`ca.pem`, and its key `ca.key`, mode 0600, to keep off the gateways)
//! and per gateway a certificate naming it (`GW.pem`, its ID_FQDN) and
//! its private key (`GW.key`, PKCS#8, mode 0600).
//!
//! ```text
//! meshplane keys --ike-ca /etc/meshplane/ike --gateways gw0,gw1,gw2
//! ```

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
    #[arg(long, value_name = "DIR", required_unless_present = "ike_ca")]
    pub out_dir: Option<PathBuf>,
    /// Replace keys already in the directory.
    #[arg(long)]
    pub force: bool,
    /// Issue IKEv2 credentials into DIR: a CA and one certificate and key
    /// per gateway of `--gateways`.
    #[arg(long, value_name = "DIR", requires = "gateways")]
    pub ike_ca: Option<PathBuf>,
    /// Gateway names (DNS names, each one's IKE identity), comma-separated.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub gateways: Vec<String>,
    /// Key type of the CA and the gateways: ecdsa-p256 or ed25519.
    #[arg(long, default_value = "ecdsa-p256", value_name = "ALG")]
    pub ike_alg: String,
    /// Days the certificates are valid from now (the CA's: twice as long).
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    pub ike_days: u64,
}

/// Issues the CA and each gateway's certificate and key into `dir`;
/// returns the gateway names.
pub fn write_ike_credentials(
    dir: &std::path::Path,
    gateways: &[String],
    alg: meshplane_control::ike::SigAlg,
    now_unix: u64,
    days: u64,
    force: bool,
) -> anyhow::Result<Vec<String>> {
    use meshplane_control::ike::cert::issue;
    let mut names: Vec<String> = gateways
        .iter()
        .map(|g| g.trim().to_string())
        .filter(|g| !g.is_empty())
        .collect();
    names.sort();
    names.dedup();
    if names.is_empty() {
        bail!("--gateways: no gateway names");
    }
    if let Some(bad) = names
        .iter()
        .find(|g| g.contains(['/', '\\']) || g.starts_with('.') || *g == "ca")
    {
        bail!("--gateways: {bad:?} cannot be a file name next to ca.pem");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_path = dir.join("ca.pem");
    if ca_path.exists() && !force {
        bail!(
            "{} exists: a CA is already there (--force replaces it, and every gateway then needs its new certificate)",
            ca_path.display()
        );
    }
    let from = now_unix.saturating_sub(3600);
    let to = now_unix.saturating_add(days.saturating_mul(86_400));
    let ca_to = now_unix.saturating_add(days.saturating_mul(2 * 86_400));
    let ca = issue::ca("meshplane constellation CA", alg, from, ca_to)?;
    for g in &names {
        let i = ca
            .issue(g, alg, from, to)
            .with_context(|| format!("--gateways: {g:?}"))?;
        std::fs::write(dir.join(format!("{g}.pem")), &i.cert_pem)
            .with_context(|| format!("writing {g}.pem"))?;
        super::mesh::write_private(&dir.join(format!("{g}.key")), &i.key_pem)?;
    }
    super::mesh::write_private(&dir.join("ca.key"), &ca.key_pem())?;
    std::fs::write(&ca_path, ca.cert_pem())
        .with_context(|| format!("writing {}", ca_path.display()))?;
    Ok(names)
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
    if let Some(dir) = &a.ike_ca {
        let alg = match a.ike_alg.as_str() {
            "ecdsa-p256" => meshplane_control::ike::SigAlg::EcdsaP256Sha256,
            "ed25519" => meshplane_control::ike::SigAlg::Ed25519,
            x => bail!("--ike-alg: {x:?} is neither ecdsa-p256 nor ed25519"),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs();
        let names = write_ike_credentials(dir, &a.gateways, alg, now, a.ike_days, a.force)?;
        crate::outln!(
            "IKE CA {} and certificates for {} in {}",
            dir.join("ca.pem").display(),
            names.join(", "),
            dir.display()
        )?;
    }
    let Some(out_dir) = &a.out_dir else {
        return Ok(());
    };
    let ids = parse_nodes(&a.nodes, n).map_err(|e| anyhow::anyhow!("--nodes: {e}"))?;
    let trust = write_keys(out_dir, &ids, a.force)?;
    crate::outln!(
        "{} keys (satellites 0..{n_sats}, ground stations from {n_sats}) in {}; trust file {}",
        trust.len(),
        out_dir.display(),
        out_dir.join("trust").display()
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

    #[test]
    fn ike_ca_needs_gateways_and_stands_without_out_dir() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            keys: KeysArgs,
        }
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(
                std::iter::once("keys").chain(args.iter().copied()),
            )
            .map(|c| c.keys)
        };
        let k = parse(&["--ike-ca", "d", "--gateways", "gw0,gw1"]).expect("ike only");
        assert_eq!(k.gateways, ["gw0", "gw1"]);
        assert!(k.out_dir.is_none());
        assert!(parse(&["--out-dir", "k"]).is_ok());
        assert!(parse(&[]).is_err(), "one of --out-dir, --ike-ca");
        assert!(
            parse(&["--ike-ca", "d"]).is_err(),
            "--ike-ca needs --gateways"
        );
    }

    #[test]
    fn ike_credentials_are_a_ca_and_one_certificate_per_gateway() {
        use meshplane_control::ike::{Credentials, Identity, SigAlg};
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mp-ike-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let now = 1_800_000_000;
        let gws = ["gw1".to_string(), "gw0".into(), "gw1".into()];
        let names =
            write_ike_credentials(&dir, &gws, SigAlg::Ed25519, now, 30, false).expect("issue");
        assert_eq!(names, ["gw0", "gw1"]);
        let read = |f: &str| {
            crate::file_read::read_bytes(&dir.join(f), crate::file_read::CONFIG_LIMIT).expect(f)
        };
        for g in &names {
            let c = Credentials::from_pem(
                &read(&format!("{g}.pem")),
                &read(&format!("{g}.key")),
                &read("ca.pem"),
            )
            .expect("credentials");
            assert!(c.covers(&Identity::fqdn(g)));
            assert_eq!(c.algorithm(), SigAlg::Ed25519);
            let mode = std::fs::metadata(dir.join(format!("{g}.key")))
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mode = std::fs::metadata(dir.join("ca.key"))
            .expect("ca.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Not over an existing CA without --force.
        assert!(write_ike_credentials(&dir, &gws, SigAlg::Ed25519, now, 30, false).is_err());
        assert!(
            write_ike_credentials(&dir, &["../x".into()], SigAlg::Ed25519, now, 30, true).is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
