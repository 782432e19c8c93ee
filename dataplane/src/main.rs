//! The `meshplane` command: run the embedded chain, replay captures through
//! a node, generate traffic, check configurations, compute routes.

// Operator files are read through `meshplane::file_read` (see clippy.toml).
#![deny(clippy::disallowed_methods)]
// Output through `out!`/`outln!`: a closed stdout ends quietly.
#![deny(clippy::disallowed_macros)]

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use meshplane::chain::{default_chain, run_chain, verify_inner};
use meshplane::config::{parse_mac, NodeConfig, Prefix};
use meshplane::gen::{generate, packets, FrameSize, GenSpec};
use meshplane::io::pcap::{read_file, CaptureWriter};
use meshplane::replay::{replay, ReplayOptions};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "meshplane",
    version,
    about = "Packet data plane of a LEO optical-mesh backbone"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate traffic and replay it through the embedded gateway A ->
    /// satellite -> gateway B chain; print each node's report and verify
    /// that every inner packet arrives intact.
    Demo(DemoArgs),
    /// Replay a capture through one node and write what it transmits.
    Replay(ReplayArgs),
    /// Write test traffic (Ethernet/IP/UDP) to a pcap file.
    Gen(GenArgs),
    /// Validate a node configuration and print a summary.
    CheckConfig {
        /// The node's TOML file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Check this host for running a node (hugepages, hugetlbfs, isolated
    /// cores, IOMMU, bpffs, memlock) and, with --config, the cores,
    /// devices and interfaces the node names; one line per check.
    CheckHost(meshplane::cli::check_host::CheckHostArgs),
    /// Routes over a constellation: one path, all pairs, or a time series.
    Routes(meshplane::cli::routes::RoutesArgs),
    /// Make the constellation's notice keys: one Ed25519 key per node and
    /// the trust file of every node's public key.
    Keys(meshplane::cli::keys::KeysArgs),
    /// Plan an emulated mesh: the nodes, links and configurations that
    /// carry one gateway pair's routes over a window (for scripts/mesh).
    MeshPlan(meshplane::cli::mesh::MeshPlanArgs),
    /// Carry a netns mesh's links with their propagation delay, from the
    /// geometry its nodes use (run in its links namespace, for scripts/mesh).
    MeshDelays(meshplane::cli::mesh_delays::MeshDelaysArgs),
    /// Emulate the constellation in one process, in virtual time: every
    /// satellite and gateway on the production data plane, links with
    /// their propagation delay and capacity, flows between gateway pairs.
    Emulate(meshplane::cli::emulate::EmulateArgs),
    /// Run a node on the devices its configuration names (backend `dpdk`,
    /// `afxdp`, or `auto`: DPDK, else AF_XDP): pinned workers on the
    /// configured cores, a stats table each second, SIGHUP reloads the
    /// tables, SIGINT/SIGTERM stop cleanly.
    Run(RunArgs),
    /// Ask a running node through its management socket: show status,
    /// tables, ports or drops; ping a node; lsp-ping or lsp-trace an
    /// egress gateway.
    Ctl(meshplane::cli::ctl::CtlArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The node's TOML file (re-read on SIGHUP: tables only).
    #[arg(long)]
    config: PathBuf,
    /// Stop after this many seconds (0 to 1e9, fractions allowed).
    #[arg(long, value_parser = parse_seconds)]
    seconds: Option<std::time::Duration>,
    /// Stop once nothing has been received for this many milliseconds
    /// (counted from the first frame; 1 to 1e12).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_MS))]
    until_idle_ms: Option<u64>,
    /// Keep FILE up to date with the node's statistics as JSON: rewritten
    /// (atomically) with every stats table, a last time at exit with
    /// `"final": true`.
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics (a loopback
    /// address, e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<std::net::SocketAddr>,
    /// Allow --metrics on a non-loopback address (no authentication).
    #[arg(long)]
    metrics_public: bool,
    /// Print no stats table while running (the final report still goes to stdout).
    #[arg(long)]
    quiet: bool,
    /// Interval of the stats table (stderr) and the JSON file, in
    /// milliseconds (10 to 1e12).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=MAX_MS))]
    stats_every_ms: u64,
    /// Listen for `meshplane ctl` on PATH instead of the config's
    /// `[node] socket` (default /run/meshplane/NODE.sock).
    #[arg(long, value_name = "PATH", value_parser = parse_socket, conflicts_with = "no_socket")]
    socket: Option<PathBuf>,
    /// Run without a management socket.
    #[arg(long)]
    no_socket: bool,
}

/// `--socket`: a path a Unix socket can have.
fn parse_socket(s: &str) -> std::result::Result<PathBuf, String> {
    let p = PathBuf::from(s);
    match meshplane::config::bad_socket_path(&p) {
        Some(why) => Err(why),
        None => Ok(p),
    }
}

/// Longest `--seconds`: about 31 years.
const MAX_SECONDS: f64 = 1e9;

/// Longest interval in milliseconds a flag takes (also about 31 years).
const MAX_MS: u64 = 1_000_000_000_000;

/// Most packets `demo` generates (it holds every hop's capture in memory).
const MAX_DEMO_PACKETS: u64 = 1_000_000;

/// Most replays of `demo`'s traffic.
const MAX_DEMO_LOOPS: u64 = 100;

/// `--seconds`: a finite number from 0 to [`MAX_SECONDS`], as a duration.
fn parse_seconds(s: &str) -> std::result::Result<std::time::Duration, String> {
    let want = || format!("want a number of seconds from 0 to {MAX_SECONDS:e}");
    let v: f64 = s.trim().parse().map_err(|_| want())?;
    if !(0.0..=MAX_SECONDS).contains(&v) {
        return Err(want());
    }
    std::time::Duration::try_from_secs_f64(v).map_err(|_| want())
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Packets to generate (1 to 1000000).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=MAX_DEMO_PACKETS))]
    count: u64,
    /// Frame size on the wire: 64, 512, 1420, imix or a number.
    #[arg(long, default_value = "imix")]
    size: FrameSize,
    /// Flows.
    #[arg(long, default_value_t = 64)]
    flows: u32,
    /// Replays of the generated traffic into the first node (1 to 100).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=MAX_DEMO_LOOPS))]
    loops: u64,
    /// Directory for the captures of every hop (input.pcap, <node>.pcap).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReplayArgs {
    /// The node's TOML file.
    #[arg(long)]
    config: PathBuf,
    /// Input capture (pcap or pcapng, Ethernet).
    #[arg(long)]
    pcap: PathBuf,
    /// Output capture: every transmitted frame, in order. With several
    /// ports in use, `--per-port` also writes OUT-<port>.pcap for each.
    #[arg(long)]
    out: PathBuf,
    /// Times to replay the input.
    #[arg(long, default_value_t = 1)]
    loops: u64,
    /// Port the capture arrives on (default: the first port).
    #[arg(long)]
    rx_port: Option<String>,
    /// Also write one file per transmitting port.
    #[arg(long)]
    per_port: bool,
    /// I/O backend: `pcap` (the heap backend) or `dpdk` (the capture
    /// enters through DPDK's net_pcap and runs over mbufs). Default: the
    /// config's `[io] backend` when it is `dpdk`, else `pcap`.
    #[arg(long)]
    io: Option<String>,
}

#[derive(clap::Args)]
struct GenArgs {
    /// Output pcap file.
    #[arg(long)]
    out: PathBuf,
    /// Packets.
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Frame size on the wire incl. FCS: 64, 512, 1420, imix or a number.
    #[arg(long, default_value = "64")]
    size: FrameSize,
    /// Flows (destination host and source port vary per flow).
    #[arg(long, default_value_t = 16)]
    flows: u32,
    /// Destination prefix.
    #[arg(long, default_value = "10.2.0.0/16")]
    dst: Prefix,
    /// Source prefix.
    #[arg(long)]
    src: Option<Prefix>,
    /// Destination MAC (the gateway's LAN port).
    #[arg(long, default_value = "02:00:00:00:0a:01")]
    dst_mac: String,
    /// Source MAC.
    #[arg(long, default_value = "02:00:00:00:0a:aa")]
    src_mac: String,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_logs(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .init();
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Demo(a) => demo(a),
        Cmd::Replay(a) => replay_cmd(a),
        Cmd::Gen(a) => gen_cmd(a),
        Cmd::CheckConfig { config } => check_config(config),
        Cmd::CheckHost(a) => meshplane::cli::check_host::run(&a),
        Cmd::Routes(a) => meshplane::cli::routes::run(&a),
        Cmd::MeshPlan(a) => meshplane::cli::mesh::run(&a),
        Cmd::MeshDelays(a) => meshplane::cli::mesh_delays::run(&a),
        Cmd::Emulate(a) => meshplane::cli::emulate::run(&a),
        Cmd::Keys(a) => meshplane::cli::keys::run(&a),
        Cmd::Run(a) => run_cmd(a),
        Cmd::Ctl(a) => meshplane::cli::ctl::run(&a),
    };
    if let Err(e) = r {
        if meshplane::cli::stdout::is_closed_stdout(&e) {
            // The reader has what it wanted (`| head`): end as it expects.
            std::process::exit(0);
        }
        eprintln!("meshplane: error: {}", error_chain(&e));
        std::process::exit(1);
    }
}

/// Whether log lines carry ANSI colours: only on a terminal, and never
/// with `NO_COLOR` set to anything but the empty string (no-color.org), so
/// that a log file (`scripts/mesh`, `2>node.log`) holds plain text.
fn colour_logs(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn demo(a: DemoArgs) -> Result<()> {
    let hops = default_chain().context("embedded configuration")?;
    let largest = match a.size {
        FrameSize::Fixed(n) => n,
        FrameSize::Imix => meshplane::gen::IMIX_CYCLE
            .iter()
            .copied()
            .max()
            .unwrap_or(64),
    };
    if !chain_carries(&hops, largest)? {
        // Bisect for the largest size the chain delivers (64 always fits).
        let (mut ok, mut bad) = (64, largest);
        while bad - ok > 1 {
            let mid = ok + (bad - ok) / 2;
            if chain_carries(&hops, mid)? {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        bail!(
            "--size {}: the demo chain carries frames of at most {ok} bytes (its buffers hold \
             {} bytes after the headroom, and ESP adds a trailer)",
            a.size,
            meshplane::frame::DEFAULT_DATA_ROOM
        );
    }
    let spec = GenSpec {
        count: a.count,
        size: a.size,
        flows: a.flows,
        ..GenSpec::default()
    };
    let input = generate(&spec).map_err(anyhow::Error::msg)?;
    meshplane::outln!(
        "generated {} packets, size {}, {} flows, 10.1.0.1 -> 10.2.0.0/16",
        input.len(),
        a.size,
        a.flows
    )?;
    let names: Vec<String> = hops.iter().map(|h| h.node.name.clone()).collect();
    meshplane::outln!("chain: {} (loops {})", names.join(" -> "), a.loops)?;
    let res = run_chain(&hops, input.clone(), a.loops).map_err(anyhow::Error::msg)?;
    for r in &res.reports {
        meshplane::out!("{}", r.render())?;
    }
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut w = CaptureWriter::create(&dir.join("input.pcap"))?;
        for p in &input {
            w.write(p.ts, &p.data)?;
        }
        w.finish()?;
        for (hop, out) in hops.iter().zip(&res.outputs) {
            let path = dir.join(format!("{}.pcap", hop.node.name));
            let mut w = CaptureWriter::create(&path)?;
            for p in out {
                w.write(p.ts, &p.data)?;
            }
            w.finish()?;
        }
        meshplane::outln!("captures written to {}", dir.display())?;
    }
    let last = res.outputs.last().map(Vec::as_slice).unwrap_or(&[]);
    let ip_hops = gateway_hops(&hops);
    let (ok, bad) = verify_inner(&input, a.loops, ip_hops, last);
    meshplane::outln!(
        "end to end: {ok} inner packets delivered byte-for-byte, {bad} lost or altered (inner TTL less {ip_hops}, one per gateway)"
    )?;
    if bad > 0 {
        bail!("{bad} packets lost or altered across the chain");
    }
    Ok(())
}

/// The IP hops of a chain: each gateway forwards the inner packet once,
/// decrementing its TTL.
fn gateway_hops(hops: &[meshplane::chain::Hop]) -> u8 {
    let n = hops
        .iter()
        .filter(|h| h.node.role == meshplane::config::Role::Gateway)
        .count();
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// Whether the embedded chain delivers one frame of `size` bytes (on the
/// wire, with FCS) intact.
fn chain_carries(hops: &[meshplane::chain::Hop], size: usize) -> Result<bool> {
    let input = generate(&GenSpec {
        count: 1,
        size: FrameSize::Fixed(size),
        flows: 1,
        ..GenSpec::default()
    })
    .map_err(anyhow::Error::msg)?;
    let res = run_chain(hops, input.clone(), 1).map_err(anyhow::Error::msg)?;
    let last = res.outputs.last().map(Vec::as_slice).unwrap_or(&[]);
    Ok(verify_inner(&input, 1, gateway_hops(hops), last) == (1, 0))
}

/// An error and its causes, `: `-separated, each said once: a cause whose
/// text its parent's message already ends with (an error type that prints
/// its source and also returns it from `source()`) is not repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.ends_with(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn replay_cmd(a: ReplayArgs) -> Result<()> {
    let cfg = NodeConfig::load(&a.config)?;
    let io = match a.io.as_deref() {
        Some(io) => io,
        None if cfg.io.backend == "dpdk" => "dpdk",
        None => "pcap",
    };
    if io != "pcap" && io != "dpdk" {
        bail!("--io {io}: replay runs over pcap (the heap backend) or dpdk");
    }
    let rx_port = match &a.rx_port {
        Some(n) => usize::from(cfg.port_index(n).with_context(|| {
            format!("--rx-port {n:?}: {} has no such port", a.config.display())
        })?),
        None => 0,
    };
    let (input, info) = read_file(&a.pcap)?;
    if info.truncated > 0 {
        tracing::warn!(
            "{}: {} packets were captured shorter than sent; they are replayed as captured",
            a.pcap.display(),
            info.truncated
        );
    }
    let mut out = CaptureWriter::create(&a.out)?;
    let mut per_port: Vec<Option<CaptureWriter>> = (0..cfg.ports.len()).map(|_| None).collect();
    let opts = ReplayOptions {
        loops: a.loops,
        rx_port,
    };
    let mut sink = |p: usize, ts, d: &[u8]| -> Result<()> {
        out.write(ts, d)?;
        if a.per_port {
            if per_port[p].is_none() {
                let stem = a.out.with_extension("");
                let path = PathBuf::from(format!("{}-{}.pcap", stem.display(), cfg.ports[p].name));
                per_port[p] = Some(CaptureWriter::create(&path)?);
            }
            if let Some(w) = per_port[p].as_mut() {
                w.write(ts, d)?;
            }
        }
        Ok(())
    };
    let report = if io == "dpdk" {
        replay_over_dpdk(&cfg, &input, &opts, &mut sink)?
    } else {
        replay(&cfg, Arc::<[_]>::from(input), &opts, &mut sink)?
    };
    out.finish()?;
    for w in per_port.into_iter().flatten() {
        w.finish()?;
    }
    meshplane::out!("{}", report.render())?;
    if info.skipped_oversize > 0 {
        meshplane::outln!(
            "  skipped {} records longer than {} B (no backend carries such a frame)",
            info.skipped_oversize,
            meshplane::io::pcap::MAX_RECORD
        )?;
    }
    Ok(())
}

fn run_cmd(a: RunArgs) -> Result<()> {
    use meshplane::runtime::{ConfigReloader, Layout, Signals};
    // First, so that a SIGINT during start-up still ends in a clean stop.
    let signals = Signals::install().context("installing signal handlers")?;
    let (reloader, tables) = ConfigReloader::load(&a.config)?;
    tracing::info!("AES-GCM: {}", meshplane::sa::aead::backend().describe());
    let cfg = reloader.config().clone();
    if !matches!(cfg.io.backend.as_str(), "dpdk" | "afxdp" | "auto") {
        bail!(
            "{}: `run` drives the node's own devices, which needs [io] backend = \"dpdk\", \
             \"afxdp\" or \"auto\" (this node says {:?}); use `replay` for captures",
            a.config.display(),
            cfg.io.backend
        );
    }
    let layout =
        Layout::new(&cfg.cores, cfg.mode).with_context(|| format!("{}", a.config.display()))?;
    if a.seconds.is_none() && a.until_idle_ms.is_none() {
        tracing::info!("running until SIGINT/SIGTERM (--seconds or --until-idle-ms end the run)");
    }
    let duration = a.seconds;
    let node = NodeRun {
        args: &a,
        cfg: &cfg,
        layout: &layout,
        signals: &signals,
        opts: meshplane::runtime::RunOptions {
            idle: cfg.idle,
            duration,
            until_idle: a.until_idle_ms.map(std::time::Duration::from_millis),
            tick_every: std::time::Duration::from_millis(50),
            channels: Some(Arc::new(meshplane::runtime::Channels::new(
                layout.threads().len(),
                cfg.punt,
            ))),
            // Set in `serve` once it knows whether IKE runs.
            farewell: None,
        },
    };
    match cfg.io.backend.as_str() {
        "dpdk" => run_over_dpdk(node, reloader, tables),
        "afxdp" => run_over_afxdp(node, reloader, tables),
        _ => run_auto(node, reloader, tables),
    }
}

/// Opens the node's AF_XDP sockets and serves.
fn run_over_afxdp(
    n: NodeRun<'_>,
    reloader: meshplane::runtime::ConfigReloader,
    tables: meshplane::tables::Tables,
) -> Result<()> {
    let mut backend = meshplane::io::afxdp::AfXdpBackend::open(n.cfg, n.layout.queues())
        .with_context(|| format!("node {} over AF_XDP", n.cfg.name))?;
    serve(&mut backend, n, reloader, tables)
}

/// `backend = "auto"`: DPDK when every port names a device and it opens,
/// else AF_XDP, saying why in one line.
#[cfg(feature = "dpdk")]
fn run_auto(
    n: NodeRun<'_>,
    reloader: meshplane::runtime::ConfigReloader,
    tables: meshplane::tables::Tables,
) -> Result<()> {
    if let Some(p) = n.cfg.ports.iter().find(|p| p.dpdk.is_none()) {
        tracing::warn!(
            "backend auto: port {:?} names no `dpdk` device; falling back to AF_XDP",
            p.name
        );
        return run_over_afxdp(n, reloader, tables);
    }
    match open_dpdk(n.cfg, n.layout.queues()) {
        Ok(mut backend) => serve(&mut backend, n, reloader, tables),
        Err(e) => {
            tracing::warn!("backend auto: DPDK failed ({e:#}); falling back to AF_XDP");
            run_over_afxdp(n, reloader, tables)
        }
    }
}

/// `backend = "auto"` without DPDK compiled in: AF_XDP.
#[cfg(not(feature = "dpdk"))]
fn run_auto(
    n: NodeRun<'_>,
    reloader: meshplane::runtime::ConfigReloader,
    tables: meshplane::tables::Tables,
) -> Result<()> {
    tracing::warn!("backend auto: this meshplane was built without DPDK; falling back to AF_XDP");
    run_over_afxdp(n, reloader, tables)
}

/// Everything `run` needs besides the backend.
struct NodeRun<'a> {
    args: &'a RunArgs,
    cfg: &'a NodeConfig,
    layout: &'a meshplane::runtime::Layout,
    signals: &'a meshplane::runtime::Signals,
    opts: meshplane::runtime::RunOptions,
}

/// Runs the node over an opened backend: tables, stats, metrics, reload,
/// and the final report on stdout.
fn serve<B: meshplane::runtime::Backend>(
    backend: &mut B,
    mut n: NodeRun<'_>,
    mut reloader: meshplane::runtime::ConfigReloader,
    tables: meshplane::tables::Tables,
) -> Result<()> {
    use meshplane::runtime::{control_thread, MetricsServer, StatsHub, StatsReporter, TableStore};
    use std::time::Duration;
    let a = n.args;
    let store = Arc::new(TableStore::new(tables));
    let port_names: Vec<String> = n.cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = Arc::new(StatsHub::new(
        &n.cfg.name,
        n.layout.mode(),
        port_names.clone(),
        n.layout.threads().to_vec(),
    ));
    let _metrics = match a.metrics {
        Some(addr) => Some(MetricsServer::start(addr, a.metrics_public, hub.clone())?),
        None => None,
    };
    let service_stats = Arc::new(meshplane::control::service_loop::ServiceStats::default());
    let (mgmt, oam_requests) = start_mgmt(&n, &hub, &store, &service_stats)?;
    // A stats file that cannot be written fails now, not after the run.
    if let Some(path) = &a.stats_json {
        meshplane::runtime::write_json(path, &hub.snapshot(), false)
            .with_context(|| format!("--stats-json {}", path.display()))?;
    }
    let mut reporter = StatsReporter::new(
        Duration::from_millis(a.stats_every_ms),
        a.quiet,
        a.stats_json.clone(),
    );
    tracing::info!(
        node = %n.cfg.name,
        backend = backend.name(),
        mode = n.layout.mode().name(),
        threads = n.layout.threads().len(),
        "running"
    );
    // BFD on the node's links: its sessions run on the service thread,
    // their link events reach the control agent.
    let bfd = meshplane::control::bfd::BfdSessions::new(
        n.cfg,
        meshplane::control::service_loop::random_seed(),
        0, // the service loop's monotonic clock starts with it
    );
    let (link_tx, link_rx) =
        crossbeam::channel::bounded(meshplane::control::service_loop::LINK_EVENT_QUEUE);
    if !bfd.is_empty() {
        tracing::info!(sessions = bfd.view().len(), "BFD on the node's links");
    }
    // Each link's repaired tables, built ahead by the control agent and
    // published by the service thread the moment BFD takes the link down.
    let armed = (!bfd.is_empty() && n.opts.channels.is_some())
        .then(|| Arc::new(meshplane::control::armed_repairs::ArmedRepairs::default()));
    let mut agent = match &n.cfg.control {
        Some(_) => {
            let mut agent = meshplane::control::ControlAgent::new(n.cfg)
                .with_context(|| format!("{}: [control]", a.config.display()))?
                .with_link_events(link_rx);
            if let Some(armed) = &armed {
                agent = agent.with_armed_repairs(armed.clone());
            }
            tracing::info!(
                node_id = agent.node(),
                time_scale = agent.clock().scale(),
                "control plane: routes from the constellation"
            );
            control_thread::install_initial(&mut agent, &store);
            Some(agent)
        }
        None => None,
    };
    // Link-state notices over the BFD links, signed with the node's key.
    let flooding = match (&n.cfg.flood, &agent) {
        (Some(f), Some(ag)) => Some(
            meshplane::control::flooding::Flooding::new(f, ag.node(), ag.n_sats())
                .with_context(|| format!("{}: [flood]", a.config.display()))?,
        ),
        (Some(_), None) => {
            tracing::warn!("[flood] needs [control] (the node's id): no notices are flooded");
            None
        }
        _ => None,
    };
    // The node's own packets: answered on the service thread, over the
    // workers' punt and inject queues.
    // IKEv2 with the peer gateways: the driver on the service thread, its
    // SAs merged into the tables by the node's one publisher (the control
    // agent with [control], else the reloader).
    let ike = match &n.cfg.ike {
        Some(i) => {
            let auth = meshplane::config::ike_credentials::read_auth(i)
                .with_context(|| a.config.display().to_string())?;
            let share = Arc::new(meshplane::control::ike::IkeShare::default());
            let driver = meshplane::control::ike::IkeDriver::new(
                n.cfg,
                &auth,
                Box::new(meshplane_control::ike::SystemRng),
                share.clone(),
            );
            match agent.take() {
                Some(ag) => agent = Some(ag.with_ike(share)),
                None => reloader = reloader.with_ike(share),
            }
            tracing::info!(
                address = %i.address,
                peers = i.peers.len(),
                "IKEv2 negotiates this gateway's SAs"
            );
            driver
        }
        None => None,
    };
    // A gateway's last words (IKE's DELETEs) when it stops.
    let farewell = (ike.is_some() && n.opts.channels.is_some())
        .then(|| Arc::new(meshplane::runtime::Farewell::default()));
    n.opts.farewell = farewell.clone();
    let services = n.opts.channels.clone().map(|channels| {
        let tables = store.load();
        let node = meshplane::control::service_loop::node_info(
            &n.cfg.name,
            agent.as_ref().map(|a| a.node()),
            &tables,
        );
        let book = agent
            .as_ref()
            .map_or_else(meshplane::control::address_book::AddressBook::empty, |a| {
                a.address_book().clone()
            });
        tracing::info!(
            addresses = ?node.addresses,
            "answering ARP, ping and LSP ping for the node"
        );
        let s = meshplane::control::service_loop::ServiceLoop::new(
            channels,
            node,
            book,
            oam_requests,
            service_stats,
        );
        let s = match ike {
            Some(d) => s.with_ike(d),
            None => s,
        };
        // On stop, its IKE SAs are deleted before the workers end.
        let s = match &farewell {
            Some(f) => s.with_farewell(f.clone()),
            None => s,
        };
        let s = match &armed {
            Some(a) => s.with_armed_repairs(a.clone()),
            None => s,
        };
        if bfd.is_empty() {
            s
        } else {
            s.with_bfd(bfd, flooding, Some(link_tx))
        }
    });
    let control_stop = std::sync::atomic::AtomicBool::new(false);
    let reload_stop = std::sync::atomic::AtomicBool::new(false);
    let summary = std::thread::scope(|scope| {
        // SIGHUP re-reads the file here, off the thread that handles
        // SIGINT and publishes stats.
        let (store_r, stop_r, signals) = (&store, &reload_stop, n.signals);
        let frozen = n.cfg.control.is_some();
        let reload = std::thread::Builder::new()
            .name("reload".into())
            .spawn_scoped(scope, move || {
                meshplane::runtime::serve_reloads(&mut reloader, store_r, signals, stop_r, frozen)
            });
        let control = agent.take().map(|agent| {
            let (store, stop) = (&store, &control_stop);
            std::thread::Builder::new()
                .name("control".into())
                .spawn_scoped(scope, move || {
                    control_thread::control_loop(agent, store, stop)
                })
        });
        let service = services.map(|s| {
            let (store, stop) = (&store, &control_stop);
            std::thread::Builder::new()
                .name("services".into())
                .spawn_scoped(scope, move || s.run(store, stop))
        });
        let summary = serve_workers(backend, &n, &store, &hub, &mut reporter);
        control_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reload_stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = reload {
            tracing::error!("reload thread did not start (SIGHUP is ignored): {e}");
        }
        if let Some(Err(e)) = control {
            tracing::error!("control thread did not start: {e}");
        }
        if let Some(Err(e)) = service {
            tracing::error!("service thread did not start (the node answers nothing): {e}");
        }
        summary
    });
    // Stops with the other threads and removes its socket.
    drop(mgmt);
    let summary = summary?;
    let snap = &summary.snapshot;
    let totals = meshplane::replay::ReplayReport {
        node: n.cfg.name.clone(),
        port_names,
        stats: snap.total.clone(),
        elapsed: summary.elapsed,
    };
    let mut out = format!("{} worker(s)\n{}", snap.workers.len(), totals.render());
    for (name, d) in totals.port_names.iter().zip(&snap.devices) {
        out.push_str(&format!(
            "  dev  {name:<8} ipackets {} opackets {} imissed {} ierrors {} oerrors {} rx_nombuf {}\n",
            d.rx_packets, d.tx_packets, d.rx_missed, d.rx_errors, d.tx_errors, d.rx_nombuf
        ));
    }
    out.push_str(&snap.render_table(None));
    meshplane::out!("{out}")?;
    reporter
        .finish(snap)
        .with_context(|| format!("writing {:?}", a.stats_json))?;
    if let Some(b) = snap.buffers {
        if !b.is_full() {
            tracing::warn!(
                "{} of {} buffers did not come back",
                b.size - b.available,
                b.size
            );
        }
    }
    Ok(())
}

/// The management socket of `run` (none with `--no-socket` or `[node]
/// socket = ""`), and the end of its OAM channel when a control thread
/// could answer ping, lsp-ping and lsp-trace.
fn start_mgmt(
    n: &NodeRun<'_>,
    hub: &Arc<meshplane::runtime::StatsHub>,
    store: &Arc<meshplane::runtime::TableStore>,
    services: &Arc<meshplane::control::service_loop::ServiceStats>,
) -> Result<(
    Option<meshplane::control::MgmtServer>,
    Option<crossbeam::channel::Receiver<meshplane::control::OamRequest>>,
)> {
    use meshplane::control::{MgmtNode, MgmtOptions, MgmtServer};
    let path = match &n.args.socket {
        _ if n.args.no_socket => None,
        Some(p) => Some(p.clone()),
        None => n.cfg.socket.clone(),
    };
    let Some(path) = path else {
        tracing::info!("no management socket (meshplane ctl cannot ask this node)");
        return Ok((None, None));
    };
    let mut opts = MgmtOptions::new(path);
    // The service thread runs LSP probes for every node.
    opts.oam = true;
    let node = MgmtNode {
        name: n.cfg.name.clone(),
        role: n.cfg.role,
        hub: Arc::clone(hub),
        store: Arc::clone(store),
        services: Some(Arc::clone(services)),
    };
    let (server, oam) =
        MgmtServer::start(opts, node).with_context(|| format!("node {}", n.cfg.name))?;
    Ok((Some(server), oam))
}

/// The workers' part of `serve`: runs them, printing stats on the
/// supervisor's ticks (reloads run on their own thread).
fn serve_workers<B: meshplane::runtime::Backend>(
    backend: &mut B,
    n: &NodeRun<'_>,
    store: &meshplane::runtime::TableStore,
    hub: &meshplane::runtime::StatsHub,
    reporter: &mut meshplane::runtime::StatsReporter,
) -> Result<meshplane::runtime::RunSummary> {
    meshplane::runtime::run(
        backend,
        n.layout,
        store,
        hub,
        n.signals.stop_flag(),
        &n.opts,
        |hub| reporter.tick(hub),
    )
    .with_context(|| format!("node {}", n.cfg.name))
}

#[cfg(feature = "dpdk")]
fn run_over_dpdk(
    n: NodeRun<'_>,
    reloader: meshplane::runtime::ConfigReloader,
    tables: meshplane::tables::Tables,
) -> Result<()> {
    let mut backend = open_dpdk(n.cfg, n.layout.queues())?;
    serve(&mut backend, n, reloader, tables)
}

/// EAL for the node and its devices, `queues` queue pairs each.
#[cfg(feature = "dpdk")]
fn open_dpdk(cfg: &NodeConfig, queues: usize) -> Result<meshplane::io::dpdk::DpdkBackend> {
    use meshplane::io::dpdk::{DpdkBackend, EalBuilder};
    let eal = EalBuilder::for_node(cfg, true)
        .init()
        .context("initialising DPDK")?;
    DpdkBackend::open(&eal, cfg, queues, 0)
        .with_context(|| format!("node {}: opening ports", cfg.name))
}

#[cfg(not(feature = "dpdk"))]
fn run_over_dpdk(
    _n: NodeRun<'_>,
    _reloader: meshplane::runtime::ConfigReloader,
    _tables: meshplane::tables::Tables,
) -> Result<()> {
    bail!("`run` with backend dpdk: this meshplane was built without the `dpdk` feature")
}

/// Replays through DPDK: EAL for the node (its cores, `eal_args`,
/// hugepages or `--no-huge`), the capture through net_pcap.
#[cfg(feature = "dpdk")]
fn replay_over_dpdk(
    cfg: &NodeConfig,
    input: &[meshplane::io::pcap::CapturedPacket],
    opts: &ReplayOptions,
    sink: impl FnMut(usize, std::time::Duration, &[u8]) -> Result<()>,
) -> Result<meshplane::replay::ReplayReport> {
    use meshplane::io::dpdk::{replay_dpdk, EalBuilder};
    let eal = EalBuilder::for_node(cfg, false)
        .init()
        .context("initialising DPDK")?;
    Ok(replay_dpdk(&eal, cfg, input, opts, sink)?)
}

#[cfg(not(feature = "dpdk"))]
fn replay_over_dpdk(
    _cfg: &NodeConfig,
    _input: &[meshplane::io::pcap::CapturedPacket],
    _opts: &ReplayOptions,
    _sink: impl FnMut(usize, std::time::Duration, &[u8]) -> Result<()>,
) -> Result<meshplane::replay::ReplayReport> {
    bail!("--io dpdk: this meshplane was built without the `dpdk` feature")
}

fn gen_cmd(a: GenArgs) -> Result<()> {
    let src = match a.src {
        Some(s) => s,
        None if a.dst.addr.is_ipv6() => "fd00:1::/32".parse().map_err(anyhow::Error::msg)?,
        None => "10.1.0.0/16".parse().map_err(anyhow::Error::msg)?,
    };
    let spec = GenSpec {
        count: a.count,
        size: a.size,
        flows: a.flows,
        dst: a.dst,
        src,
        dst_mac: parse_mac(&a.dst_mac).map_err(anyhow::Error::msg)?,
        src_mac: parse_mac(&a.src_mac).map_err(anyhow::Error::msg)?,
        ..GenSpec::default()
    };
    // Streamed: the capture may be far larger than memory.
    let mut w = CaptureWriter::create(&a.out)?;
    let mut written = 0u64;
    for p in packets(&spec) {
        let p = p.map_err(anyhow::Error::msg)?;
        w.write(p.ts, &p.data)?;
        written += 1;
    }
    w.finish()?;
    meshplane::outln!(
        "wrote {} packets ({} flows, size {}) to {}",
        written,
        a.flows,
        a.size,
        a.out.display()
    )?;
    Ok(())
}

fn check_config(path: PathBuf) -> Result<()> {
    let c = NodeConfig::load(&path)?;
    meshplane::tables::Tables::from_config(&c, 0)?;
    meshplane::outln!(
        "{}: node {} ({:?}): {} ports, {} SAs, {} FECs, {} LFIB entries, {} delivery prefixes",
        path.display(),
        c.name,
        c.role,
        c.ports.len(),
        c.sa.len(),
        c.fec.len(),
        c.lfib.len(),
        c.deliver.len()
    )?;
    for (i, p) in c.ports.iter().enumerate() {
        let fec = c
            .fec
            .iter()
            .find(|f| c.port_index(&f.port) == Some(i as u16));
        let tunnelled = fec.is_some();
        // A FEC without a label (a partner port) and an SA in UDP change
        // the room; the first FEC on the port speaks for it.
        let labelled = fec.is_none_or(|f| f.label.is_some());
        let udp = fec.is_some_and(|f| {
            c.sa.iter()
                .any(|s| s.dir == meshplane::config::SaDir::Out && s.spi == f.sa && s.udp_encap)
        });
        let kind = if p.is_lan() { "LAN port" } else { "link" };
        let through = if tunnelled {
            format!(
                "; the tunnel through it carries IP packets of up to {} B",
                meshplane::tables::tunnel_mtu(p.mtu, labelled, udp)
            )
        } else {
            String::new()
        };
        meshplane::outln!(
            "  port {}: {kind}, mtu {} (frames up to {} B){through}",
            p.name,
            p.mtu,
            p.max_frame()
        )?;
    }
    for sa in &c.sa {
        meshplane::outln!("  {}", sa.summary())?;
    }
    if let Some(ike) = &c.ike {
        // The credentials are read as the node will read them (mode,
        // format, the certificate's chain and identity), never printed.
        meshplane::config::ike_credentials::read_auth(ike)
            .with_context(|| path.display().to_string())?;
        meshplane::outln!("  {}", ike.summary())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::colour_logs;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some("".into())));
        assert!(!colour_logs(true, Some("1".into())));
        assert!(!colour_logs(false, None));
    }
}
