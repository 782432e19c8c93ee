//! `meshplane ctl`: asks a running node through its management socket
//! (see [`crate::control::mgmt`]), in the manner of `birdc` and `vppctl`.
//!
//! ```text
//! meshplane ctl show status                # the only node on this host
//! meshplane ctl --node gw-a show tables    # /run/meshplane/gw-a.sock
//! meshplane ctl --node gw-a show sa        # SA counts, lifetimes, state
//! meshplane ctl --socket /tmp/n.sock --json show ports
//! meshplane ctl --node gw-a ping --to sat:5 --count 5 --interval-ms 200
//! meshplane ctl --node gw-a lsp-ping --to gs:1 --count 5
//! meshplane ctl --node gw-a lsp-trace --to gs:1
//! ```
//!
//! Text for a person by default (aligned columns), the node's JSON as it
//! sent it with `--json`. Exit status 0 when the node answered the
//! question, 1 otherwise, with a message that says what to do.

use crate::config::{default_socket, DEFAULT_SOCKET_DIR};
use crate::control::mgmt::{
    DropsReply, OamResult, PortsReply, SaStatusReply, StatusReply, TablesReply, DEFAULT_COUNT,
    DEFAULT_INTERVAL_MS, DEFAULT_MAX_HOPS, DEFAULT_SIZE, DEFAULT_TIMEOUT_MS, MAX_COUNT, MAX_HOPS,
    MAX_INTERVAL_MS, MAX_LSP_COUNT, MAX_SIZE, MAX_TIMEOUT_MS, MIN_INTERVAL_MS, OAM_MARGIN,
};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `meshplane ctl`.
#[derive(clap::Args, Debug)]
pub struct CtlArgs {
    /// The node's management socket (its config's `[node] socket`, or
    /// `run --socket`). Default: the node named by --node, else the only
    /// socket in /run/meshplane.
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "node")]
    pub socket: Option<PathBuf>,
    /// The node by name: its default socket /run/meshplane/NAME.sock.
    #[arg(long, value_name = "NAME", global = true)]
    pub node: Option<String>,
    /// Print the node's JSON answer as it is.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to ask.
    #[command(subcommand)]
    pub cmd: CtlCmd,
}

/// What `ctl` asks.
#[derive(clap::Subcommand, Debug)]
pub enum CtlCmd {
    /// Show the node's state.
    Show {
        /// What to show.
        #[arg(value_enum)]
        what: ShowWhat,
    },
    /// Ping a node from this node, as `ping` does: ICMP echoes from the
    /// node address over the labels toward the target (run by the node's
    /// control thread).
    Ping(PingArgs),
    /// LSP ping an egress gateway from this node: echoes over its label,
    /// each answered by the far end (run by the node's control thread).
    LspPing(LspPingArgs),
    /// LSP trace to an egress gateway: one echo per TTL, each answered by
    /// the hop where it expires.
    LspTrace(LspTraceArgs),
}

/// What `ctl show` shows.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowWhat {
    /// Name, role, uptime, table epoch, totals, workers.
    Status,
    /// The installed FEC, LFIB, SA (never a key) and delivery entries.
    Tables,
    /// Per port: MAC, the workers' and the device's counters.
    Ports,
    /// Drops by reason.
    Drops,
    /// SAs: packets and bytes, lifetime left, state (active, soft-reached,
    /// expired).
    Sa,
    /// BFD sessions: state, timers, counters.
    Bfd,
    /// Link-state notices known, when each applies, flooding counters.
    Failures,
    /// IKE SAs, Child SAs (state, SPIs, lifetime left), rekeys, counters.
    Ike,
}

/// `ctl ping`.
#[derive(clap::Args, Debug)]
pub struct PingArgs {
    /// The node: a ground station's name, gs:NAME, sat:ID or an address.
    #[arg(long, value_name = "TARGET")]
    pub to: String,
    /// Echoes to send (1 to 100).
    #[arg(long, default_value_t = DEFAULT_COUNT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_COUNT)))]
    pub count: u32,
    /// Time between echoes, in milliseconds (10 to 10000).
    #[arg(long, default_value_t = DEFAULT_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(MIN_INTERVAL_MS..=MAX_INTERVAL_MS))]
    pub interval_ms: u64,
    /// Wait for each reply, in milliseconds (1 to 10000).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS))]
    pub timeout_ms: u64,
    /// Data bytes per echo (0 to 1400; the ICMP message is 8 more).
    #[arg(long, default_value_t = DEFAULT_SIZE,
          value_parser = clap::value_parser!(u16).range(0..=i64::from(MAX_SIZE)))]
    pub size: u16,
}

/// `ctl lsp-ping`.
#[derive(clap::Args, Debug)]
pub struct LspPingArgs {
    /// The egress gateway (as the node's control plane names it, e.g. gs:1).
    #[arg(long, value_name = "GATEWAY")]
    pub to: String,
    /// Echoes to send (1 to 64).
    #[arg(long, default_value_t = DEFAULT_COUNT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_LSP_COUNT)))]
    pub count: u32,
    /// Wait for each reply, in milliseconds (1 to 10000).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS))]
    pub timeout_ms: u64,
}

/// `ctl lsp-trace`.
#[derive(clap::Args, Debug)]
pub struct LspTraceArgs {
    /// The egress gateway (as the node's control plane names it, e.g. gs:1).
    #[arg(long, value_name = "GATEWAY")]
    pub to: String,
    /// Highest TTL to probe (1 to 64).
    #[arg(long, default_value_t = DEFAULT_MAX_HOPS,
          value_parser = clap::value_parser!(u8).range(1..=i64::from(MAX_HOPS)))]
    pub max_hops: u8,
    /// Wait for each hop's reply, in milliseconds (1 to 10000).
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS))]
    pub timeout_ms: u64,
}

/// How long `show` waits for its answer.
pub const SHOW_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest answer `ctl` reads, in bytes.
pub const MAX_ANSWER: u64 = 256 << 20;

/// Why `ctl` got no answer, or an answer that is an error.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Nothing at the path.
    #[error(
        "no management socket at {}: is the node running? (`meshplane run` listens there; \
         its [node] socket or `run --socket` may name another path: ask that one with \
         --socket PATH)",
        .0.display()
    )]
    NoSocket(PathBuf),
    /// A socket file nobody listens on.
    #[error(
        "nothing listens on {}: the node that made it is not running any more (start it, \
         or ask another node with --socket PATH or --node NAME)",
        .0.display()
    )]
    NotListening(PathBuf),
    /// Something else than a socket.
    #[error("{} is not a socket: name the node's management socket with --socket PATH", .0.display())]
    NotASocket(PathBuf),
    /// The socket (or its directory) is not ours to use.
    #[error(
        "permission denied on {}: only root and the user the node runs as may ask it \
         (try again as one of them, e.g. with sudo)",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    /// Connecting failed otherwise.
    #[error("connecting to {}: {source}", .path.display())]
    Connect {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The node hung up without a whole answer.
    #[error(
        "the node at {} closed the connection before answering (is it stopping? its log \
         may say why)",
        .0.display()
    )]
    Closed(PathBuf),
    /// No answer in time.
    #[error(
        "no answer from the node at {} within {:.1} s (is it overloaded or stuck? its log \
         may say why)",
        .0.display(),
        .1.as_secs_f64()
    )]
    Timeout(PathBuf, Duration),
    /// Talking failed otherwise.
    #[error("talking to the node at {}: {source}", .path.display())]
    Io {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The answer is not what this `ctl` understands.
    #[error(
        "the node's answer is not what ctl expects ({0}): are ctl and the node the same version?"
    )]
    BadAnswer(String),
    /// The node answered with an error.
    #[error("the node answered: {0}")]
    Node(String),
    /// Which node to ask is unclear.
    #[error("{0}")]
    Choose(String),
}

/// The socket `args` name: `--socket`, `--node`'s default path, or the
/// only socket in [`DEFAULT_SOCKET_DIR`].
pub fn choose_socket(args: &CtlArgs) -> Result<PathBuf, CtlError> {
    if let Some(p) = &args.socket {
        return Ok(p.clone());
    }
    if let Some(n) = &args.node {
        if n.is_empty() || n.contains('/') || n == "." || n == ".." {
            return Err(CtlError::Choose(format!(
                "--node {}: want a node name (its socket is {DEFAULT_SOCKET_DIR}/NAME.sock); \
                 name a path with --socket PATH",
                crate::config::echo(n)
            )));
        }
        return Ok(default_socket(n));
    }
    let dir = Path::new(DEFAULT_SOCKET_DIR);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_socket()))
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sock"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(CtlError::Choose(format!(
            "no node's management socket in {DEFAULT_SOCKET_DIR}: is a node running? Name \
             its socket with --socket PATH, or the node with --node NAME"
        ))),
        _ => {
            let names: Vec<String> = found
                .iter()
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            Err(CtlError::Choose(format!(
                "several nodes run here ({}): name one with --node NAME or --socket PATH",
                names.join(", ")
            )))
        }
    }
}

fn connect_error(path: &Path, e: std::io::Error) -> CtlError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::NotFound => CtlError::NoSocket(path.to_path_buf()),
        ErrorKind::PermissionDenied => CtlError::PermissionDenied(path.to_path_buf()),
        ErrorKind::ConnectionRefused => {
            let socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
            if socket {
                CtlError::NotListening(path.to_path_buf())
            } else {
                CtlError::NotASocket(path.to_path_buf())
            }
        }
        _ => CtlError::Connect {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Sends `request` to the node at `path` and returns its answer (which may
/// be `{"error": ...}`: see [`node_error`]), waiting at most `timeout` for
/// each read or write.
pub fn query(path: &Path, request: &Value, timeout: Duration) -> Result<Value, CtlError> {
    use std::io::ErrorKind;
    let mut stream = UnixStream::connect(path).map_err(|e| connect_error(path, e))?;
    let io = |source| CtlError::Io {
        path: path.to_path_buf(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = request.to_string();
    line.push('\n');
    match stream.write_all(line.as_bytes()) {
        Ok(()) => {
            // One request: the node may close once it has answered.
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        // A node that refused this connection has written why first.
        Err(e) if matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) => {}
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return Err(CtlError::Timeout(path.to_path_buf(), timeout))
        }
        Err(e) => return Err(io(e)),
    }
    let mut reader = BufReader::new(stream.take(MAX_ANSWER));
    let mut answer = Vec::new();
    match reader.read_until(b'\n', &mut answer) {
        Ok(_) if answer.ends_with(b"\n") => {}
        Ok(_) => return Err(CtlError::Closed(path.to_path_buf())),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            return Err(CtlError::Timeout(path.to_path_buf(), timeout))
        }
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {
            return Err(CtlError::Closed(path.to_path_buf()))
        }
        Err(e) => return Err(io(e)),
    }
    serde_json::from_slice(&answer).map_err(|e| CtlError::BadAnswer(e.to_string()))
}

/// The error an answer carries, if it is one.
pub fn node_error(answer: &Value) -> Option<String> {
    answer
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The request `cmd` makes and how long to wait for its answer.
pub fn request_of(cmd: &CtlCmd) -> (Value, Duration) {
    // The node waits the probes' budget plus its margin; ctl a little more.
    let oam_wait = |probes: u32, timeout_ms: u64| {
        Duration::from_millis(timeout_ms)
            .saturating_mul(probes)
            .saturating_add(OAM_MARGIN)
            .saturating_add(Duration::from_secs(2))
    };
    match cmd {
        CtlCmd::Show { what } => {
            let cmd = match what {
                ShowWhat::Status => "status",
                ShowWhat::Tables => "tables",
                ShowWhat::Ports => "ports",
                ShowWhat::Drops => "drops",
                ShowWhat::Sa => "sa",
                ShowWhat::Bfd => "bfd",
                ShowWhat::Failures => "failures",
                ShowWhat::Ike => "ike",
            };
            (json!({ "cmd": cmd }), SHOW_TIMEOUT)
        }
        CtlCmd::Ping(a) => (
            json!({"cmd": "ping", "to": a.to, "count": a.count, "interval_ms": a.interval_ms,
                   "timeout_ms": a.timeout_ms, "size": a.size}),
            // The intervals between echoes, then the last one's wait.
            oam_wait(1, a.timeout_ms).saturating_add(
                Duration::from_millis(a.interval_ms).saturating_mul(a.count.saturating_sub(1)),
            ),
        ),
        CtlCmd::LspPing(a) => (
            json!({"cmd": "lsp-ping", "to": a.to, "count": a.count, "timeout_ms": a.timeout_ms}),
            oam_wait(a.count, a.timeout_ms),
        ),
        CtlCmd::LspTrace(a) => (
            json!({"cmd": "lsp-trace", "to": a.to, "max_hops": a.max_hops, "timeout_ms": a.timeout_ms}),
            oam_wait(u32::from(a.max_hops), a.timeout_ms),
        ),
    }
}

/// Runs `meshplane ctl`.
pub fn run(args: &CtlArgs) -> anyhow::Result<()> {
    let path = choose_socket(args)?;
    let (request, timeout) = request_of(&args.cmd);
    let answer = query(&path, &request, timeout)?;
    if args.json {
        crate::outln!("{answer}")?;
        return match node_error(&answer) {
            Some(e) => Err(CtlError::Node(e).into()),
            None => Ok(()),
        };
    }
    let (text, failed) = render(&args.cmd, &answer)?;
    crate::out!("{text}")?;
    match failed {
        Some(e) => Err(CtlError::Node(e).into()),
        None => Ok(()),
    }
}

fn typed<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, CtlError> {
    T::deserialize(v).map_err(|e| CtlError::BadAnswer(e.to_string()))
}

/// The answer to `cmd` as text for a person, and the error it carries
/// (an OAM result may carry hops and an error both).
pub fn render(cmd: &CtlCmd, answer: &Value) -> Result<(String, Option<String>), CtlError> {
    let oam = matches!(
        cmd,
        CtlCmd::Ping(_) | CtlCmd::LspPing(_) | CtlCmd::LspTrace(_)
    );
    if let Some(e) = node_error(answer) {
        if !(oam && answer.get("hops").is_some()) {
            return Err(CtlError::Node(e));
        }
    }
    Ok(match cmd {
        CtlCmd::Show { what } => {
            let text = match what {
                ShowWhat::Status => render_status(&typed(answer)?),
                ShowWhat::Tables => render_tables(&typed(answer)?),
                ShowWhat::Ports => render_ports(&typed(answer)?),
                ShowWhat::Drops => render_drops(&typed(answer)?),
                ShowWhat::Sa => render_sa(&typed(answer)?),
                ShowWhat::Bfd => render_bfd(&typed(answer)?),
                ShowWhat::Failures => render_failures(&typed(answer)?),
                ShowWhat::Ike => render_ike(&typed(answer)?),
            };
            (text, None)
        }
        CtlCmd::Ping(a) => {
            let r: OamResult = typed(answer)?;
            // A ping that never started (no route...) is only its error,
            // as `ping` says only "Network is unreachable".
            let text = if r.hops.is_empty() && r.error.is_some() {
                String::new()
            } else {
                render_icmp_ping(&r, a.size)
            };
            let replied = r.hops.iter().filter(|h| h.rtt_us.is_some()).count();
            let failed = r
                .error
                .clone()
                .or_else(|| (replied == 0).then(|| format!("no echo to {} was answered", r.to)));
            (text, failed)
        }
        CtlCmd::LspPing(_) => {
            let r: OamResult = typed(answer)?;
            let text = render_ping(&r);
            let replied = r.hops.iter().filter(|h| h.rtt_us.is_some()).count();
            let failed = r
                .error
                .clone()
                .or_else(|| (replied == 0).then(|| format!("no echo to {} was answered", r.to)));
            (text, failed)
        }
        CtlCmd::LspTrace(a) => {
            let r: OamResult = typed(answer)?;
            (render_trace(&r, a.max_hops), r.error.clone())
        }
    })
}

/// Columns for a person: left-aligned text, right-aligned numbers.
struct Table {
    head: Vec<(&'static str, bool)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named `head`, each `true` when right-aligned.
    fn new(head: &[(&'static str, bool)]) -> Self {
        Table {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self, indent: &str) -> String {
        let mut width: Vec<usize> = self.head.iter().map(|(h, _)| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut s = String::new();
        let head: Vec<String> = self.head.iter().map(|(h, _)| h.to_string()).collect();
        for cells in std::iter::once(&head).chain(&self.rows) {
            let mut line = String::from(indent);
            for (i, ((c, (_, right)), w)) in cells.iter().zip(&self.head).zip(&width).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = w.saturating_sub(c.chars().count());
                if *right {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(c);
                } else {
                    line.push_str(c);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            s.push_str(line.trim_end());
            s.push('\n');
        }
        s
    }
}

fn dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `12.3 s`, `4m05s`, `3h02m01s`, `2d03h`.
fn uptime(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    let t = s as u64;
    let (d, h, m, sec) = (t / 86400, t / 3600 % 24, t / 60 % 60, t % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else {
        format!("{m}m{sec:02}s")
    }
}

fn routes_text(r: &Option<crate::control::mgmt::RoutesReply>) -> String {
    match r {
        Some(r) => format!(
            "label epoch {} at t = {:.3} s ({})",
            r.label_epoch, r.t_s, r.reason
        ),
        None => "from the configuration file".into(),
    }
}

fn worker_name(role: &str, index: usize) -> String {
    match role {
        "crypto" => format!("c{index}"),
        _ => format!("w{index}"),
    }
}

/// `show status`.
pub fn render_status(r: &StatusReply) -> String {
    let mut s = String::new();
    let mut kv = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<11} {v}");
    };
    kv("node", format!("{} ({}, {})", r.node, r.role, r.mode));
    kv("uptime", uptime(r.uptime_s));
    kv(
        "tables",
        format!("epoch {}, {}", r.table_epoch, routes_text(&r.routes)),
    );
    let e = r.entries;
    kv(
        "entries",
        format!(
            "{} FEC, {} LFIB, {} SA, {} delivery",
            e.fec, e.lfib, e.sa, e.deliver
        ),
    );
    kv(
        "next hops",
        if r.next_hops.is_empty() {
            "none".into()
        } else {
            r.next_hops.join(", ")
        },
    );
    kv(
        "rx",
        format!("{} packets, {} bytes", r.rx_packets, r.rx_bytes),
    );
    kv(
        "tx",
        format!("{} packets, {} bytes", r.tx_packets, r.tx_bytes),
    );
    let reasons: Vec<String> = r
        .drops
        .iter()
        .map(|d| format!("{} {}", d.reason, d.count))
        .collect();
    kv(
        "drops",
        if reasons.is_empty() {
            r.drops_total.to_string()
        } else {
            format!("{} ({})", r.drops_total, reasons.join(", "))
        },
    );
    if let Some(sv) = &r.services {
        let c = sv.counters;
        let ignored: Vec<String> = sv
            .ignored
            .iter()
            .map(|d| format!("{} {}", d.reason, d.count))
            .collect();
        kv(
            "own packets",
            format!(
                "{} punted, {} answered, {} probe replies, {} ignored{}, {} without a route, {} inject full",
                c.received,
                c.answered,
                c.probe_replies,
                c.ignored,
                if ignored.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", ignored.join(", "))
                },
                c.no_path,
                c.inject_full
            ),
        );
    }
    let workers: Vec<String> = r
        .workers
        .iter()
        .map(|w| {
            let core = w.core.map_or("unpinned".into(), |c| format!("core {c}"));
            format!(
                "{} ({core}, {}, epoch {})",
                worker_name(&w.role, w.index),
                w.role,
                w.epoch
            )
        })
        .collect();
    kv(
        "workers",
        if workers.is_empty() {
            "none".into()
        } else {
            workers.join(", ")
        },
    );
    s
}

/// `show tables`.
pub fn render_tables(r: &TablesReply) -> String {
    let mut s = String::new();
    let locals: Vec<String> = r.local_addrs.iter().map(|a| a.to_string()).collect();
    let _ = writeln!(
        s,
        "table epoch {}, {}; mtu {}; tunnel endpoints {}",
        r.table_epoch,
        routes_text(&r.routes),
        r.mtu,
        if locals.is_empty() {
            "none".into()
        } else {
            locals.join(", ")
        }
    );
    let section = |s: &mut String, name: &str, n: usize, t: Table| {
        if n == 0 {
            let _ = writeln!(s, "\n{name}: none");
        } else {
            let _ = write!(s, "\n{name} ({n})\n{}", t.render("  "));
        }
    };
    let mut t = Table::new(&[
        ("prefix", false),
        ("label", true),
        ("port", false),
        ("next hop", false),
        ("spi", true),
    ]);
    for f in &r.fec {
        t.row(vec![
            f.prefix.clone(),
            f.label.map_or_else(|| "-".to_string(), |l| l.to_string()),
            f.port.clone(),
            f.next_hop.clone(),
            f.spi.to_string(),
        ]);
    }
    section(&mut s, "FEC", r.fec.len(), t);
    let mut t = Table::new(&[
        ("label", true),
        ("action", false),
        ("out label", true),
        ("port", false),
        ("next hop", false),
    ]);
    for l in &r.lfib {
        t.row(vec![
            l.label.to_string(),
            l.action.clone(),
            match l.out_label {
                // A repair's pushed labels, outermost first, above it.
                Some(o) if !l.push.is_empty() => {
                    let mut v: Vec<String> = l.push.iter().map(u32::to_string).collect();
                    v.push(o.to_string());
                    v.join("/")
                }
                o => dash(o),
            },
            dash(l.port.as_ref()),
            dash(l.next_hop.as_ref()),
        ]);
    }
    section(&mut s, "LFIB", r.lfib.len(), t);
    let mut t = Table::new(&[
        ("spi", true),
        ("dir", false),
        ("tunnel", false),
        ("esn", false),
        ("seq", true),
        ("sources", false),
    ]);
    for a in &r.sa {
        t.row(vec![
            a.spi.to_string(),
            a.dir.clone(),
            format!("{} -> {}", a.tunnel_src, a.tunnel_dst),
            if a.esn { "yes" } else { "no" }.into(),
            a.seq.to_string(),
            if a.sources.is_empty() {
                if a.dir == "in" { "any" } else { "-" }.into()
            } else {
                a.sources.join(", ")
            },
        ]);
    }
    section(&mut s, "SA", r.sa.len(), t);
    let mut t = Table::new(&[("prefix", false), ("port", false), ("next hop", false)]);
    for d in &r.deliver {
        t.row(vec![d.prefix.clone(), d.port.clone(), d.next_hop.clone()]);
    }
    section(&mut s, "deliver", r.deliver.len(), t);
    s
}

/// `show ports`.
pub fn render_ports(r: &PortsReply) -> String {
    let devices = r.ports.iter().any(|p| p.device.is_some());
    let mut head = vec![
        ("port", false),
        ("mac", false),
        ("rx packets", true),
        ("rx bytes", true),
        ("tx packets", true),
        ("tx bytes", true),
    ];
    if devices {
        head.extend([
            ("dev rx", true),
            ("dev tx", true),
            ("missed", true),
            ("rx errors", true),
            ("no mbuf", true),
            ("tx errors", true),
        ]);
    }
    let mut t = Table::new(&head);
    for p in &r.ports {
        let mut row = vec![
            p.name.clone(),
            p.mac.clone(),
            p.rx_packets.to_string(),
            p.rx_bytes.to_string(),
            p.tx_packets.to_string(),
            p.tx_bytes.to_string(),
        ];
        if devices {
            match &p.device {
                Some(d) => row.extend(
                    [
                        d.rx_packets,
                        d.tx_packets,
                        d.rx_missed,
                        d.rx_errors,
                        d.rx_nombuf,
                        d.tx_errors,
                    ]
                    .map(|v| v.to_string()),
                ),
                None => row.extend(std::iter::repeat_n("-".to_string(), 6)),
            }
        }
        t.row(row);
    }
    t.render("")
}

/// `show bfd`: a line per session, then what was refused.
pub fn render_bfd(r: &crate::control::service_loop::BfdReply) -> String {
    if r.sessions.is_empty() {
        return "no BFD sessions\n".into();
    }
    let ms = |us: u64| format!("{:.1}", us as f64 / 1000.0);
    let mut t = Table::new(&[
        ("port", false),
        ("peer", false),
        ("state", false),
        ("remote", false),
        ("diag", false),
        ("tx ms", true),
        ("detect ms", true),
        ("sent", true),
        ("received", true),
        ("refused", true),
        ("up", true),
        ("down", true),
    ]);
    for v in &r.sessions {
        let s = &v.session;
        let mut state = s.state.to_string();
        if v.reported_down {
            state.push_str(" (link down)");
        }
        if v.no_peer_mac {
            state.push_str(" (no peer MAC)");
        }
        t.row(vec![
            v.port.clone(),
            match v.peer_node {
                Some(n) => format!("{} (node {n})", v.peer),
                None => v.peer.to_string(),
            },
            state,
            s.remote_state.to_string(),
            meshplane_control::bfd::diag::name(s.diag).into(),
            ms(s.tx_interval_us),
            if s.detect_time_us == 0 {
                "-".into()
            } else {
                ms(s.detect_time_us)
            },
            s.counters.sent.to_string(),
            s.counters.received.to_string(),
            s.counters.refused_total().to_string(),
            s.counters.up.to_string(),
            s.counters.down.to_string(),
        ]);
    }
    let mut out = t.render("");
    let c = r.counters;
    out.push_str(&format!(
        "transport: {} received, refused {} labelled, {} TTL not 255, {} bad UDP, {} for no session; {} not sent for no peer MAC; {} link events{}\n",
        c.received,
        c.labelled,
        c.ttl,
        c.bad_udp,
        c.no_session,
        c.no_peer_mac,
        c.events,
        if r.events_lost > 0 {
            format!(" ({} lost)", r.events_lost)
        } else {
            String::new()
        }
    ));
    out
}

/// `show ike`: the IKE SAs, the Child SAs, then the counters.
pub fn render_ike(r: &Option<crate::control::ike::IkeView>) -> String {
    let Some(r) = r else {
        return "no IKE ([ike] is not configured)\n".into();
    };
    let mut out = String::new();
    if r.ike_sas.is_empty() {
        out.push_str("no IKE SA\n");
    } else {
        let mut t = Table::new(&[
            ("peer", false),
            ("state", false),
            ("spi_i", false),
            ("spi_r", false),
        ]);
        for (peer, state, i, rr) in &r.ike_sas {
            t.row(vec![
                peer.clone(),
                state.clone(),
                format!("{i:016x}"),
                format!("{rr:016x}"),
            ]);
        }
        out.push_str(&t.render(""));
    }
    if r.children.is_empty() {
        out.push_str("no Child SA\n");
    } else {
        let mut t = Table::new(&[
            ("peer", false),
            ("spi in", true),
            ("spi out", true),
            ("state", false),
            ("replaces", true),
            ("rekey in", false),
            ("expires in", false),
        ]);
        let left = |l: &Option<crate::sa::Limits>| -> String {
            let Some(l) = l else { return "-".into() };
            let parts: Vec<String> = [
                l.seconds.map(|v| format!("{v} s")),
                l.packets.map(|v| format!("{v} pkts")),
                l.bytes.map(|v| format!("{v} B")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if parts.is_empty() {
                "-".into()
            } else {
                parts.join(", ")
            }
        };
        for c in &r.children {
            t.row(vec![
                c.peer.to_string(),
                c.spi_in.to_string(),
                c.spi_out.to_string(),
                c.state.clone(),
                c.rekey_of.map_or("-".into(), |s| s.to_string()),
                left(&c.soft_left),
                left(&c.hard_left),
            ]);
        }
        out.push_str(&t.render(""));
    }
    let c = &r.counters;
    let refused = if c.refused.is_empty() {
        "none".to_string()
    } else {
        c.refused
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!(
        "datagrams received {}, sent {}; Child SAs up {}, rekeys asked {}, switches {}; refused: {refused}\n",
        c.received, c.sent, c.child_up, c.rekeys_asked, c.switches
    ));
    out
}

/// `show failures`: the notices the node knows, then its counters.
pub fn render_failures(r: &Option<crate::control::flooding::FloodView>) -> String {
    let Some(r) = r else {
        return "no flooding ([flood] is not configured)\n".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let ago = |t: u64| {
        if t <= now {
            format!("{:.3} s ago", (now - t) as f64 / 1e9)
        } else {
            format!("in {:.3} s", (t - now) as f64 / 1e9)
        }
    };
    let mut out = format!(
        "neighbours: {}\nflood bound: {} ms\n",
        if r.neighbors.is_empty() {
            "none".to_string()
        } else {
            r.neighbors
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
        r.bound_ms
    );
    if r.notices.is_empty() {
        out.push_str("no notices\n");
    } else {
        let mut t = Table::new(&[
            ("link", false),
            ("state", false),
            ("origin", true),
            ("seq", true),
            ("originated", false),
            ("applies", false),
        ]);
        for n in &r.notices {
            t.row(vec![
                format!("{}-{}", n.link.0, n.link.1),
                if n.up { "up" } else { "down" }.into(),
                n.origin.to_string(),
                n.seq.to_string(),
                ago(n.origin_time_ns),
                ago(n.apply_at_ns),
            ]);
        }
        out.push_str(&t.render(""));
    }
    let c = &r.counters;
    out.push_str(&format!(
        "applied {}, clock skew {}; accepted {}, sent {} notices ({} retransmitted) and {} acks; refused: malformed {}, bad signature {}, stale {}, duplicate {}, rate limited {}, not a neighbour {}, table full {}\n",
        r.applied, r.clock_skew, c.accepted, c.notices_sent, c.retransmits, c.acks_sent,
        c.malformed, c.bad_signature, c.stale, c.duplicate, c.rate_limited, c.not_neighbor, c.table_full
    ));
    out
}

/// `1.5 GB`, `820 B`: decimal units, as link rates are counted.
fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if b < 1000 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// What is left of one level's limits: `reached (packets)`, `900 pkts,
/// 1.2 GB, 59m00s`, or `-` for none.
fn left_text(
    reached: &[String],
    left: &crate::sa::Limits,
    seq_left: Option<u64>,
    sequence: bool,
) -> String {
    if !reached.is_empty() {
        return format!("reached ({})", reached.join(", "));
    }
    let mut parts = Vec::new();
    if let Some(p) = left.packets {
        parts.push(format!("{p} pkts"));
    }
    if let Some(b) = left.bytes {
        parts.push(bytes_text(b));
    }
    if let Some(s) = left.seconds {
        parts.push(uptime(s as f64));
    }
    if let (true, Some(n)) = (sequence, seq_left) {
        parts.push(format!("{n} seq"));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(", ")
    }
}

/// `show sa`: a line per SA, then what an operator should do about the
/// ones that asked for a rekey or expired.
pub fn render_sa(r: &SaStatusReply) -> String {
    if r.sas.is_empty() {
        return "no SAs\n".into();
    }
    let mut t = Table::new(&[
        ("spi", true),
        ("dir", false),
        ("tunnel", false),
        ("esn", false),
        ("state", false),
        ("age", true),
        ("packets", true),
        ("bytes", true),
        ("seq", true),
        ("soft left", false),
        ("hard left", false),
    ]);
    let mut notes = String::new();
    for a in &r.sas {
        t.row(vec![
            a.spi.to_string(),
            a.dir.clone(),
            format!("{} -> {}", a.tunnel_src, a.tunnel_dst),
            if a.esn { "yes" } else { "no" }.into(),
            a.state.clone(),
            uptime(a.age_s as f64),
            a.packets.to_string(),
            a.bytes.to_string(),
            a.seq.to_string(),
            left_text(
                &a.soft_reached,
                &a.soft_left,
                a.seq_left.map(|l| l.soft),
                a.seq_left.is_some(),
            ),
            left_text(
                &a.hard_reached,
                &a.hard_left,
                a.seq_left.map(|l| l.hard),
                a.seq_left.is_some(),
            ),
        ]);
        if !a.hard_reached.is_empty() {
            let _ = writeln!(
                notes,
                "SA {} ({}) expired ({}): its traffic is dropped; install a new SA (new SPI and key) on both ends",
                a.spi,
                a.dir,
                a.hard_reached.join(", ")
            );
        } else if !a.soft_reached.is_empty() {
            let _ = writeln!(
                notes,
                "SA {} ({}) asks for a rekey ({}); no key exchange runs on this node: install a new SA (new SPI and key) on both ends before its hard lifetime",
                a.spi,
                a.dir,
                a.soft_reached.join(", ")
            );
        }
    }
    let mut out = t.render("");
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

/// `show drops`.
pub fn render_drops(r: &DropsReply) -> String {
    if r.total == 0 {
        return "no drops\n".into();
    }
    let mut t = Table::new(&[("reason", false), ("count", true)]);
    for d in &r.drops {
        t.row(vec![d.reason.clone(), d.count.to_string()]);
    }
    t.row(vec!["total".into(), r.total.to_string()]);
    t.render("")
}

fn rtt_ms(us: Option<f64>) -> String {
    us.map_or_else(|| "-".into(), |us| format!("{:.3}", us / 1000.0))
}

fn hop_row(first: String, h: &crate::control::mgmt::OamHop) -> Vec<String> {
    vec![
        first,
        dash(h.address),
        dash(h.node.as_ref()),
        rtt_ms(h.rtt_us),
        dash(h.return_code),
        h.meaning.clone(),
    ]
}

/// `lsp-ping`: one line per echo, then the summary.
pub fn render_ping(r: &OamResult) -> String {
    let mut s = format!("LSP ping to {}: {} echoes\n", r.to, r.hops.len());
    if !r.hops.is_empty() {
        let mut t = Table::new(&[
            ("seq", true),
            ("reply from", false),
            ("node", false),
            ("rtt ms", true),
            ("code", true),
            ("meaning", false),
        ]);
        for (i, h) in r.hops.iter().enumerate() {
            t.row(hop_row((i + 1).to_string(), h));
        }
        s.push_str(&t.render("  "));
    }
    let rtts: Vec<f64> = r.hops.iter().filter_map(|h| h.rtt_us).collect();
    let sent = r.hops.len();
    if sent > 0 {
        let lost = sent - rtts.len();
        let _ = write!(
            s,
            "{sent} sent, {} answered, {:.0}% lost",
            rtts.len(),
            lost as f64 * 100.0 / sent as f64
        );
        if !rtts.is_empty() {
            let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
            let max = rtts.iter().copied().fold(0.0, f64::max);
            let avg = rtts.iter().sum::<f64>() / rtts.len() as f64;
            let _ = write!(
                s,
                "; rtt min/avg/max {:.3}/{:.3}/{:.3} ms",
                min / 1000.0,
                avg / 1000.0,
                max / 1000.0
            );
        }
        s.push('\n');
    }
    s
}

/// A round-trip time in milliseconds as `ping` prints it: three
/// significant digits or so (`0.043`, `2.30`, `12.3`, `123`).
fn ping_ms(us: f64) -> String {
    let ms = us / 1000.0;
    if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// `ping`: as `ping` prints it, one line per echo (a reply, or that none
/// came), then the statistics.
pub fn render_icmp_ping(r: &OamResult, size: u16) -> String {
    let mut s = format!("PING {}: {size} data bytes\n", r.to);
    for h in &r.hops {
        let seq = h.seq.map_or_else(|| "?".into(), |q| q.to_string());
        match (h.rtt_us, h.address) {
            (Some(rtt), Some(a)) => {
                let bytes = h.bytes.unwrap_or(u32::from(size) + 8);
                let name = h.node.as_ref().map_or(String::new(), |n| format!(" ({n})"));
                let _ = writeln!(
                    s,
                    "{bytes} bytes from {a}{name}: icmp_seq={seq} time={} ms",
                    ping_ms(rtt)
                );
            }
            _ => {
                let _ = writeln!(s, "no answer for icmp_seq={seq}");
            }
        }
    }
    let rtts: Vec<f64> = r.hops.iter().filter_map(|h| h.rtt_us).collect();
    let sent = r.hops.len();
    let _ = writeln!(s, "\n--- {} ping statistics ---", r.to);
    let loss = if sent == 0 {
        100.0
    } else {
        (sent - rtts.len()) as f64 * 100.0 / sent as f64
    };
    let _ = writeln!(
        s,
        "{sent} packets transmitted, {} received, {loss:.0}% packet loss",
        rtts.len()
    );
    if !rtts.is_empty() {
        let n = rtts.len() as f64;
        let min = rtts.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rtts.iter().copied().fold(0.0, f64::max);
        let avg = rtts.iter().sum::<f64>() / n;
        let mdev = (rtts.iter().map(|x| (x - avg) * (x - avg)).sum::<f64>() / n).sqrt();
        let _ = writeln!(
            s,
            "rtt min/avg/max/mdev = {:.3}/{:.3}/{:.3}/{:.3} ms",
            min / 1000.0,
            avg / 1000.0,
            max / 1000.0,
            mdev / 1000.0
        );
    }
    s
}

/// `lsp-trace`: one line per TTL.
pub fn render_trace(r: &OamResult, max_hops: u8) -> String {
    let mut s = format!("LSP trace to {}, {max_hops} hops max\n", r.to);
    if !r.hops.is_empty() {
        let mut t = Table::new(&[
            ("ttl", true),
            ("address", false),
            ("node", false),
            ("rtt ms", true),
            ("code", true),
            ("meaning", false),
        ]);
        for h in &r.hops {
            t.row(hop_row(h.ttl.to_string(), h));
        }
        s.push_str(&t.render("  "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::mgmt::OamHop;

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let mut t = Table::new(&[("name", false), ("count", true)]);
        t.row(vec!["a".into(), "1".into()]);
        t.row(vec!["longer".into(), "12345678".into()]);
        assert_eq!(
            t.render(""),
            "name       count\na              1\nlonger  12345678\n"
        );
    }

    #[test]
    fn show_sa_lines_up_counts_and_what_is_left_and_says_what_to_do() {
        use crate::sa::{Lifetime, Limits};
        let hops = crate::chain::default_chain().expect("chain");
        let mut cfg = hops[0].node.clone();
        cfg.sa[0].lifetime = Lifetime {
            soft: Limits {
                packets: Some(100),
                ..Limits::NONE
            },
            hard: Limits {
                packets: Some(1000),
                bytes: Some(2_500_000_000),
                seconds: Some(3600),
            },
        };
        let t = crate::tables::Tables::from_config(&cfg, 1).expect("tables");
        let _ = t.sa_out[0].reserve_seq(200);
        t.sa_out[0].life.count(200, 25_600);
        let installed = t
            .sa_in
            .values()
            .map(|i| i.sa.life.installed())
            .chain([t.sa_out[0].life.installed()])
            .max()
            .expect("SAs");
        let at = installed + Duration::from_millis(245_500);
        let text = render_sa(&crate::control::mgmt::sa_status(&t, at));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            " spi  dir  tunnel                  esn  state           age  packets  bytes  seq  \
             soft left          hard left",
            "{text}"
        );
        assert!(
            lines[1].starts_with(
                "4097  out  192.0.2.1 -> 192.0.2.2  no   soft-reached  4m05s      200  25600  200  reached (packets)  800 pkts, 2.5 GB, 55m55s, 4294967095 seq"
            ),
            "{text}"
        );
        assert!(
            lines[2].starts_with("4098  in   192.0.2.2 -> 192.0.2.1  yes  active        4m05s        0      0    0  -"),
            "{text}"
        );
        assert!(
            text.contains(
                "SA 4097 (out) asks for a rekey (packets); no key exchange runs on this node"
            ),
            "{text}"
        );
        t.sa_out[0].life.count(800, 0);
        let text = render_sa(&crate::control::mgmt::sa_status(&t, at));
        assert!(text.contains("expired"), "{text}");
        assert!(
            text.contains("reached (packets)  reached (packets)"),
            "{text}"
        );
        assert!(
            text.contains("SA 4097 (out) expired (packets): its traffic is dropped"),
            "{text}"
        );
        assert_eq!(bytes_text(999), "999 B");
        assert_eq!(bytes_text(1_234_567), "1.2 MB");
    }

    #[test]
    fn uptime_reads_as_a_person_would_say_it() {
        assert_eq!(uptime(12.34), "12.3 s");
        assert_eq!(uptime(245.0), "4m05s");
        assert_eq!(uptime(3.0 * 3600.0 + 121.0), "3h02m01s");
        assert_eq!(uptime(2.0 * 86400.0 + 3.0 * 3600.0), "2d03h00m");
        assert_eq!(uptime(f64::NAN), "-");
    }

    #[test]
    fn a_ping_without_any_answer_fails_and_says_so() {
        let hop = |rtt: Option<f64>| OamHop {
            ttl: 255,
            seq: None,
            bytes: None,
            address: rtt.map(|_| std::net::Ipv4Addr::new(100, 64, 1, 1)),
            node: None,
            rtt_us: rtt,
            return_code: rtt.map(|_| 3),
            meaning: if rtt.is_some() { "egress" } else { "no reply" }.into(),
        };
        let cmd = CtlCmd::LspPing(LspPingArgs {
            to: "gs:1".into(),
            count: 2,
            timeout_ms: 10,
        });
        let lost = serde_json::to_value(OamResult {
            to: "gs:1".into(),
            hops: vec![hop(None), hop(None)],
            error: None,
        })
        .expect("json");
        let (text, failed) = render(&cmd, &lost).expect("render");
        assert!(text.contains("2 sent, 0 answered, 100% lost"), "{text}");
        assert_eq!(failed.as_deref(), Some("no echo to gs:1 was answered"));
        let half = serde_json::to_value(OamResult {
            to: "gs:1".into(),
            hops: vec![hop(Some(1500.0)), hop(None)],
            error: None,
        })
        .expect("json");
        let (text, failed) = render(&cmd, &half).expect("render");
        assert!(
            text.contains("rtt min/avg/max 1.500/1.500/1.500 ms"),
            "{text}"
        );
        assert_eq!(failed, None);
        // A bare error is the node's answer, not a result.
        let e = render(&cmd, &json!({"error": "busy"})).expect_err("error");
        assert_eq!(e.to_string(), "the node answered: busy");
    }

    #[test]
    fn ping_times_read_as_ping_prints_them() {
        assert_eq!(ping_ms(43.0), "0.043");
        assert_eq!(ping_ms(2300.0), "2.30");
        assert_eq!(ping_ms(12_345.0), "12.3");
        assert_eq!(ping_ms(123_456.0), "123");
    }

    #[test]
    fn a_ping_prints_each_echo_then_its_statistics() {
        let echo = |seq: u32, rtt: Option<f64>| OamHop {
            ttl: 64,
            seq: Some(seq),
            bytes: rtt.map(|_| 64),
            address: rtt.map(|_| std::net::Ipv4Addr::new(192, 0, 2, 2)),
            node: None,
            rtt_us: rtt,
            return_code: None,
            meaning: String::new(),
        };
        let cmd = CtlCmd::Ping(PingArgs {
            to: "192.0.2.2".into(),
            count: 4,
            interval_ms: 10,
            timeout_ms: 10,
            size: 56,
        });
        let r = serde_json::to_value(OamResult {
            to: "192.0.2.2".into(),
            hops: vec![
                echo(1, Some(1000.0)),
                echo(2, None),
                echo(3, Some(3000.0)),
                echo(4, Some(2000.0)),
            ],
            error: None,
        })
        .expect("json");
        let (text, failed) = render(&cmd, &r).expect("render");
        assert_eq!(failed, None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "PING 192.0.2.2: 56 data bytes",
                "64 bytes from 192.0.2.2: icmp_seq=1 time=1.00 ms",
                "no answer for icmp_seq=2",
                "64 bytes from 192.0.2.2: icmp_seq=3 time=3.00 ms",
                "64 bytes from 192.0.2.2: icmp_seq=4 time=2.00 ms",
                "",
                "--- 192.0.2.2 ping statistics ---",
                "4 packets transmitted, 3 received, 25% packet loss",
                "rtt min/avg/max/mdev = 1.000/2.000/3.000/0.816 ms",
            ]
        );
        // A ping that never started (no route, say) is only its error.
        let r = json!({"to": "sat:9", "hops": [], "error": "no label route to sat:9"});
        let (text, failed) = render(&cmd, &r).expect("render");
        assert_eq!(text, "");
        assert_eq!(failed.as_deref(), Some("no label route to sat:9"));
        // Nothing answered: the statistics, and a failure.
        let r = serde_json::to_value(OamResult {
            to: "192.0.2.2".into(),
            hops: vec![echo(1, None)],
            error: None,
        })
        .expect("json");
        let (text, failed) = render(&cmd, &r).expect("render");
        assert!(text.contains("1 packets transmitted, 0 received, 100% packet loss"));
        assert!(!text.contains("rtt"));
        assert_eq!(failed.as_deref(), Some("no echo to 192.0.2.2 was answered"));
    }
}
