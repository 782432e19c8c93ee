//! `meshplane mesh-plan`: the nodes, links and configurations that emulate
//! the part of a constellation the traffic between a set of gateways
//! crosses, written to a directory for `scripts/mesh up`.
//!
//! ```text
//! meshplane mesh-plan --constellation starlink-550 --from London --to New-York-Newark \
//!     --at 9 --window 60 --out-dir /run/meshplane/mesh
//! meshplane mesh-plan --gateways London,New-York-Newark,Paris --out-dir ...
//! ```
//!
//! Writes `stations.csv` (the gateways, renumbered 0, 1, ... in the order
//! given), one
//! `nodes/NAME.toml` per node, `links.tsv` (`node_a node_b iface_a iface_b
//! mac_a mac_b`), `hosts.tsv` (`host gateway iface mac addr gw_iface gw_mac
//! gw_addr`) and `plan.txt` (the path at the start and at every change).
//!
//! No node file holds a key. Each node's notice key and its copy of the
//! trust file are in `keys/`; the gateways' IKEv2 credentials in `ike/`: a
//! CA issued for this plan and one certificate per gateway (`gw0.pem`,
//! `gw0.key`, ...; private keys mode 0600), as `meshplane keys --ike-ca`
//! issues them, and each gateway's own copy of the CA (`gw0.ca.pem`). Every
//! pair of gateways negotiates its SAs (the one named first initiates).

use crate::mesh::{plan, render, MeshSpec, RenderOptions};
use anyhow::{bail, Context};
use meshplane_control::{GroundStations, Preset};
use std::fmt::Write as _;
use std::path::PathBuf;

/// Arguments of `meshplane mesh-plan`.
#[derive(clap::Args, Debug)]
pub struct MeshPlanArgs {
    /// Constellation preset: starlink-550, kuiper-630 or telesat-1015.
    #[arg(long, default_value = "starlink-550")]
    pub constellation: String,
    /// Ground stations CSV to pick the gateways from (default: the embedded top 100).
    #[arg(long, value_name = "FILE")]
    pub ground_stations: Option<PathBuf>,
    /// First gateway (name or gid): the host behind it pings the other
    /// (shorthand for `--gateways FROM,TO`).
    #[arg(
        long,
        value_name = "NAME|ID",
        requires = "to",
        conflicts_with = "gateways"
    )]
    pub from: Option<String>,
    /// Second gateway.
    #[arg(
        long,
        value_name = "NAME|ID",
        requires = "from",
        conflicts_with = "gateways"
    )]
    pub to: Option<String>,
    /// The gateways (names or gids, at least two), every pair of which
    /// carries traffic; the first two are the pair `scripts/mesh ping`
    /// and `stream` use by default.
    #[arg(
        long,
        value_name = "A,B,C",
        value_delimiter = ',',
        required_unless_present = "from",
        num_args = 1..
    )]
    pub gateways: Vec<String>,
    /// Start of the window, seconds after the constellation epoch.
    #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
    pub at: f64,
    /// Length of the window whose routes the mesh must carry, seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub window: f64,
    /// Control step, milliseconds of constellation time.
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub step_ms: u64,
    /// Constellation seconds per wall-clock second.
    #[arg(long, default_value_t = 1.0, value_name = "X")]
    pub time_scale: f64,
    /// Shared clock anchor (Unix ms): constellation time `--at` happens then
    /// on every node (default: now).
    #[arg(long, value_name = "MS")]
    pub anchor_unix_ms: Option<u64>,
    /// Link-disjoint paths wherever the path changes (1: no backups).
    #[arg(long, default_value_t = 2, value_name = "K")]
    pub disjoint_paths: usize,
    /// Leave out the repair paths around each inter-satellite link of the
    /// routes (fewer nodes; a cut link then stays dark until its notice
    /// applies).
    #[arg(long)]
    pub no_repair_paths: bool,
    /// I/O backend of every node.
    #[arg(
        long,
        default_value = "afxdp",
        value_parser = clap::builder::PossibleValuesParser::new(crate::config::BACKENDS.iter().copied())
    )]
    pub backend: String,
    /// A planned-outage file every node follows (`isl-down A B`, ...; an
    /// operator's input: by default the nodes follow none, and learn
    /// failures from their own links and their neighbours).
    #[arg(long, value_name = "FILE")]
    pub failures_file: Option<PathBuf>,
    /// BFD's interval on every link, ms (transmit and receive).
    #[arg(long, default_value_t = 10, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub bfd_interval_ms: u32,
    /// BFD's detect multiplier.
    #[arg(long, default_value_t = 3, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub bfd_detect_mult: u8,
    /// Hard lifetime of every Child SA the gateways negotiate, seconds
    /// (`[ike] lifetime`; they rekey at 90 % of it). Default: `[ike]`'s
    /// own (an hour).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(2..=i64::MAX as u64))]
    pub ike_child_lifetime_s: Option<u64>,
    /// Where to write the plan.
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
}

/// Writes a file only its owner can read (a private key).
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // A file left from an earlier plan keeps its mode: set it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))
        .and_then(|()| f.write_all(text.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))
}

/// Days the gateways' certificates are valid (a mesh is a test bed).
const IKE_DAYS: u64 = 30;

/// Runs `meshplane mesh-plan`.
pub fn run(a: &MeshPlanArgs) -> anyhow::Result<()> {
    let preset: Preset = a
        .constellation
        .parse()
        .map_err(|e| anyhow::anyhow!("--constellation: {e}"))?;
    let all = match &a.ground_stations {
        Some(p) => GroundStations::parse_csv(
            &crate::file_read::read_text(p, crate::file_read::DATA_LIMIT)
                .with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| p.display().to_string())?,
        None => GroundStations::top100(),
    };
    let chosen: Vec<String> = match (&a.from, &a.to) {
        (Some(f), Some(t)) => vec![f.clone(), t.clone()],
        _ => a.gateways.clone(),
    };
    if chosen.len() < 2 {
        bail!("--gateways: a mesh needs at least two gateways");
    }
    let mut csv = String::new();
    for (gid, q) in chosen.iter().enumerate() {
        let s = &all.stations[all.find(q).with_context(|| format!("{q:?}"))? as usize];
        let _ = writeln!(
            csv,
            "{gid},{},{},{},{}",
            meshplane_control::ground::csv_field(&s.name),
            s.latitude_deg,
            s.longitude_deg,
            s.elevation_m
        );
    }
    if !(a.time_scale.is_finite() && a.time_scale > 0.0) {
        bail!("--time-scale must be a positive number");
    }
    let picked = GroundStations::parse_csv(&csv)?;
    let p = plan(
        &MeshSpec {
            preset,
            gateways: (0..chosen.len()).map(|g| g.to_string()).collect(),
            at_s: a.at,
            window_s: a.window,
            step_ms: a.step_ms,
            disjoint_paths: a.disjoint_paths,
            repairs: !a.no_repair_paths,
        },
        picked,
    )?;
    let out = &a.out_dir;
    std::fs::create_dir_all(out.join("nodes"))
        .with_context(|| format!("creating {}", out.display()))?;
    let out = std::fs::canonicalize(out)?;
    let stations = out.join("stations.csv");
    std::fs::write(&stations, &csv)?;
    let anchor = match a.anchor_unix_ms {
        Some(ms) => ms,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64,
    };
    // Each node's own notice key, and its own copy of the trust file.
    let keys_dir = out.join("keys");
    std::fs::create_dir_all(&keys_dir)
        .with_context(|| format!("creating {}", keys_dir.display()))?;
    let ids: Vec<u32> = p
        .satellites
        .iter()
        .copied()
        .chain(p.gateway_nodes())
        .collect();
    let mut trust = crate::control::keys::TrustStore::default();
    for &id in &ids {
        let (key, doc) = crate::control::keys::NodeKey::generate()?;
        trust.insert(id, key.public());
        write_private(
            &keys_dir.join(format!("{}.key", crate::mesh::render::node_name(&p, id))),
            &format!("{}\n", doc.as_str()),
        )?;
    }
    let trust = trust.render();
    for &id in &ids {
        let name = crate::mesh::render::node_name(&p, id);
        std::fs::write(keys_dir.join(format!("{name}.trust")), &trust)?;
    }
    // The gateways' IKE credentials: a CA of this plan's own, a
    // certificate per gateway naming it.
    let ike_dir = out.join("ike");
    let gateways: Vec<String> = p
        .gateway_nodes()
        .into_iter()
        .map(|id| crate::mesh::render::node_name(&p, id))
        .collect();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    super::keys::write_ike_credentials(
        &ike_dir,
        &gateways,
        meshplane_control::ike::SigAlg::EcdsaP256Sha256,
        now_s,
        IKE_DAYS,
        true,
    )
    .context("issuing the gateways' IKE credentials")?;
    // Each gateway reads its own copy of the CA, as each node its own
    // trust file: no node reads a file another node reads.
    for g in &gateways {
        std::fs::copy(ike_dir.join("ca.pem"), ike_dir.join(format!("{g}.ca.pem")))
            .with_context(|| format!("copying the CA for {g}"))?;
    }
    let r = render(
        &p,
        &RenderOptions {
            backend: a.backend.clone(),
            idle: "adaptive".into(),
            start_s: a.at,
            time_scale: a.time_scale,
            anchor_unix_ms: Some(anchor),
            step_ms: a.step_ms,
            failures_file: a.failures_file.clone(),
            keys_dir: Some(keys_dir.clone()),
            bfd: (a.bfd_interval_ms, a.bfd_detect_mult),
            ground_stations: Some(stations),
            ike_dir,
            ike_child_lifetime_s: a.ike_child_lifetime_s,
        },
    );
    // Every node file must be one the node accepts, its IKE credentials
    // included (read and checked as the gateway will at start): check them
    // all before writing any.
    for n in &r.nodes {
        let file = format!("nodes/{}.toml", n.name);
        let cfg = crate::config::NodeConfig::parse(&n.config, &file).with_context(|| {
            format!(
                "the plan's configuration for node {} is not valid (--backend {})",
                n.name, a.backend
            )
        })?;
        if let Some(ike) = &cfg.ike {
            crate::config::ike_credentials::read_auth(ike)
                .with_context(|| format!("the plan's IKE credentials for {}", n.name))?;
        }
    }
    for n in &r.nodes {
        let path = out.join("nodes").join(format!("{}.toml", n.name));
        std::fs::write(&path, &n.config).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut links = String::new();
    for l in &r.links {
        let _ = writeln!(
            links,
            "{} {} {} {} {} {}",
            l.nodes[0], l.nodes[1], l.ifaces[0], l.ifaces[1], l.macs[0], l.macs[1]
        );
    }
    std::fs::write(out.join("links.tsv"), links)?;
    let mut hosts = String::new();
    for h in &r.hosts {
        let _ = writeln!(
            hosts,
            "{} {} {} {} {} {} {} {}",
            h.name, h.gateway, h.iface, h.mac, h.addr, h.gw_iface, h.gw_mac, h.gw_addr
        );
    }
    std::fs::write(out.join("hosts.tsv"), hosts)?;
    let names: Vec<&str> = p.gateways.iter().map(|(_, n)| n.as_str()).collect();
    let mut summary = format!(
        "{} between {}, t = {} s for {} s (step {} ms, x{}): {} satellites, {} links\n",
        preset.name(),
        names.join(", "),
        a.at,
        a.window,
        a.step_ms,
        a.time_scale,
        p.satellites.len(),
        p.links.len()
    );
    // The first pair's path as `t = T s  PATH` lines; every other pair's
    // as `[gwI -> gwJ] t = T s  PATH`.
    for (k, pair) in p.paths.iter().enumerate() {
        let tag = if k == 0 {
            String::new()
        } else {
            format!(
                "[{} -> {}] ",
                crate::mesh::render::node_name(&p, p.gateway_node(pair.from)),
                crate::mesh::render::node_name(&p, p.gateway_node(pair.to))
            )
        };
        for (t, path) in &pair.changes {
            let names: Vec<String> = path
                .iter()
                .map(|&n| crate::mesh::render::node_name(&p, n))
                .collect();
            let _ = writeln!(summary, "  {tag}t = {t:8.1} s  {}", names.join(" -> "));
        }
    }
    std::fs::write(out.join("plan.txt"), &summary)?;
    crate::out!("{summary}")?;
    crate::outln!("wrote {}", out.display())?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests read back their own files
mod tests {
    use super::*;
    use clap::Parser;
    use std::os::unix::fs::PermissionsExt;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        plan: MeshPlanArgs,
    }

    fn args(extra: &[&str], out: &str) -> Result<MeshPlanArgs, clap::Error> {
        let mut v = vec![
            "mesh-plan",
            "--constellation",
            "kuiper-630",
            "--from",
            "London",
            "--to",
            "Paris",
            "--window",
            "0",
            "--out-dir",
            out,
        ];
        v.extend_from_slice(extra);
        Cli::try_parse_from(v).map(|c| c.plan)
    }

    #[test]
    fn an_unknown_backend_is_refused_before_anything_is_written() {
        let e = args(&["--backend", "bogus"], "/nonexistent").expect_err("bogus backend");
        let msg = e.to_string();
        assert!(
            msg.contains("invalid value 'bogus' for '--backend <BACKEND>'")
                && msg.contains("afxdp"),
            "{msg}"
        );
    }

    #[test]
    fn gateways_are_named_by_a_list_or_by_from_and_to_not_both() {
        let list = |v: &[&str]| {
            let mut a = vec!["mesh-plan", "--out-dir", "/x"];
            a.extend_from_slice(v);
            Cli::try_parse_from(a).map(|c| c.plan)
        };
        let a = list(&["--gateways", "London,Paris,Madrid"]).expect("list");
        assert_eq!(a.gateways, ["London", "Paris", "Madrid"]);
        assert!(list(&["--from", "London", "--to", "Paris"]).is_ok());
        for bad in [
            &["--from", "London"][..],
            &[][..],
            &[
                "--from",
                "London",
                "--to",
                "Paris",
                "--gateways",
                "Madrid,Rome",
            ][..],
        ] {
            assert!(list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn three_gateways_each_get_a_host_a_certificate_and_every_other_as_a_peer() {
        let dir = std::env::temp_dir().join(format!("mp-mesh-plan-3gw-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.to_str().expect("utf-8 path");
        let mut a = args(&[], out).expect("arguments");
        a.from = None;
        a.to = None;
        a.gateways = vec!["London".into(), "Paris".into(), "Madrid".into()];
        run(&a).expect("plan");
        let hosts = std::fs::read_to_string(dir.join("hosts.tsv")).expect("hosts");
        assert_eq!(hosts.lines().count(), 3, "{hosts}");
        let stations = std::fs::read_to_string(dir.join("stations.csv")).expect("stations");
        assert_eq!(stations.lines().count(), 3, "{stations}");
        for g in ["gw0", "gw1", "gw2"] {
            assert!(dir.join(format!("ike/{g}.pem")).exists(), "{g}");
            let text =
                std::fs::read_to_string(dir.join(format!("nodes/{g}.toml"))).expect("node file");
            assert_eq!(text.matches("[[ike.peer]]").count(), 2, "{text}");
        }
        let plan = std::fs::read_to_string(dir.join("plan.txt")).expect("plan.txt");
        assert!(plan.contains("[gw0 -> gw2] t ="), "{plan}");
        assert!(plan.contains("[gw1 -> gw2] t ="), "{plan}");
        assert!(plan.lines().any(|l| l.starts_with("  t =")), "{plan}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_child_sa_lifetime_is_at_least_two_seconds() {
        let a = args(&["--ike-child-lifetime-s", "6"], "/nonexistent").expect("args");
        assert_eq!(a.ike_child_lifetime_s, Some(6));
        assert_eq!(args(&[], "/x").expect("args").ike_child_lifetime_s, None);
        // One second leaves no room for a rekey below it.
        assert!(args(&["--ike-child-lifetime-s", "-3"], "/x").is_err());
        for bad in ["1", "0", "six"] {
            let e = args(&["--ike-child-lifetime-s", bad], "/x").expect_err(bad);
            assert!(
                e.to_string().contains("--ike-child-lifetime-s"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_plan_whose_node_files_would_be_refused_writes_none() {
        let dir = std::env::temp_dir().join(format!("mp-mesh-plan-dpdk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.to_str().expect("utf-8 path");
        // The plan's ports are veths (iface), not DPDK devices.
        let a = args(&["--backend", "dpdk"], out).expect("args");
        let e = run(&a).expect_err("dpdk ports without devices");
        let msg = format!("{e:#}");
        assert!(
            msg.contains("is not valid (--backend dpdk)")
                && msg.contains("[io] backend = \"dpdk\" needs the port's device"),
            "{msg}"
        );
        let written = std::fs::read_dir(dir.join("nodes")).map_or(0, |d| d.count());
        assert_eq!(written, 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_node_file_holds_a_key_and_private_keys_are_their_owners_only() {
        use meshplane_control::ike::{Credentials, Identity};
        let dir = std::env::temp_dir().join(format!("mp-mesh-plan-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = dir.to_str().expect("utf-8 path");
        let args = args(&[], out).expect("arguments");
        run(&args).expect("plan");
        // Planned twice into one directory: new credentials replace the old.
        run(&args).expect("plan again");
        let mut gateways = 0;
        for e in std::fs::read_dir(dir.join("nodes")).expect("nodes") {
            let path = e.expect("entry").path();
            let text = std::fs::read_to_string(&path).expect("node file");
            let cfg = crate::config::NodeConfig::parse(&text, "node.toml").expect("config");
            assert!(cfg.sa.is_empty(), "{}", path.display());
            // Files are named ([flood] key = "/.../keys/NAME.key"), never
            // key material inlined.
            let inline_secret = text.lines().any(|l| {
                l.split_once("= \"").is_some_and(|(_, v)| {
                    let v = v.trim_end_matches('"');
                    v.len() >= 32 && v.bytes().all(|b| b.is_ascii_hexdigit())
                })
            });
            assert!(
                !text.contains("PRIVATE KEY") && !inline_secret,
                "{}:\n{text}",
                path.display()
            );
            let Some(ike) = cfg.ike else { continue };
            gateways += 1;
            let crate::config::IkeCredentials::Certificate {
                certificate,
                private_key,
                ca,
            } = &ike.credentials
            else {
                panic!("{}: no certificate", path.display());
            };
            let mode = std::fs::metadata(private_key)
                .expect("key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{}", private_key.display());
            let read = |p: &std::path::Path| std::fs::read(p).expect("credential");
            let c = Credentials::from_pem(&read(certificate), &read(private_key), &read(ca))
                .expect("credentials");
            assert!(c.covers(&Identity::fqdn(&ike.identity)));
        }
        assert_eq!(gateways, 2);
        let mode = std::fs::metadata(dir.join("ike/ca.key"))
            .expect("ca.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
