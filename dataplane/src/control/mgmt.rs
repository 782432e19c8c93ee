//! The node's management socket: a Unix stream socket through which an
//! operator asks the running node what it is doing (`meshplane ctl`, in
//! the manner of `birdc`, `vppctl`, `swanctl`).
//!
//! Protocol: one request per line, a JSON object of at most
//! [`MAX_REQUEST`] bytes (`{"cmd":"status"}`); one JSON object per request
//! in answer, followed by `\n`; a connection may send several requests.
//! A failure is answered `{"error":"..."}`; after a request that is not
//! valid (too long, not JSON, an unknown command) the server closes the
//! connection.
//!
//! | request | answer |
//! | --- | --- |
//! | `{"cmd":"status"}` | [`StatusReply`] |
//! | `{"cmd":"tables"}` | [`TablesReply`] (SAs without their keys) |
//! | `{"cmd":"ports"}` | [`PortsReply`] |
//! | `{"cmd":"drops"}` | [`DropsReply`] |
//! | `{"cmd":"sa"}` | [`SaStatusReply`]: each SA's counts, lifetime and state |
//! | `{"cmd":"bfd"}` | [`BfdReply`](crate::control::service_loop::BfdReply) |
//! | `{"cmd":"failures"}` | [`FloodView`](crate::control::flooding::FloodView) or `null` without `[flood]` |
//! | `{"cmd":"ike"}` | [`IkeView`](crate::control::ike::IkeView) or `null` without `[ike]` |
//! | `{"cmd":"ping","to":"NODE","count":N,"interval_ms":I,"timeout_ms":T,"size":B}` | [`OamResult`] |
//! | `{"cmd":"lsp-ping","to":"GW","count":N,"timeout_ms":T}` | [`OamResult`] |
//! | `{"cmd":"lsp-trace","to":"GW","max_hops":N,"timeout_ms":T}` | [`OamResult`] |
//!
//! The server runs on threads of its own and reads only what the stats
//! readers read: the table snapshot ([`TableStore::load_full`]) and the
//! stats hub ([`StatsHub::snapshot`]), never a worker. A client that sends
//! garbage, never reads, hangs up mid-answer or opens many connections
//! costs at most one connection thread for [`MgmtOptions::write_timeout`]
//! or [`MgmtOptions::idle_timeout`], among at most
//! [`MgmtOptions::max_connections`]; a connection beyond those is answered
//! "busy" and closed.
//!
//! Only root and the node's own effective uid may talk to it: the socket is
//! mode 0600 and the server checks each peer's `SO_PEERCRED` as well.
//!
//! Pings (ICMP echo and LSP ping) and LSP traces run on the node's
//! control thread, which owns the probes: the server hands each one over
//! a bounded channel as an [`OamRequest`] and waits for its
//! [`OamResult`].

use super::services::ping;
use crate::config::{format_mac, Mac, Role};
use crate::drop_reason::DropReason;
use crate::runtime::{StatsHub, TableStore, WorkerRole};
use crate::tables::lfib::LfibOp;
use crate::tables::Tables;
use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest request line, in bytes (without its `\n`).
pub const MAX_REQUEST: usize = 4096;
/// Most connections served at once (by default).
pub const MAX_CONNECTIONS: usize = 16;
/// How long writing one answer may take before the client is dropped (by default).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a connection may wait between requests (by default).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// OAM requests waiting for the control thread; one more is answered "busy".
pub const OAM_QUEUE: usize = 4;
/// How much longer than an OAM request's own budget the server waits for
/// its result.
pub const OAM_MARGIN: Duration = Duration::from_secs(1);
/// How often waiting threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Echoes a `ping` or `lsp-ping` sends unless told.
pub const DEFAULT_COUNT: u32 = 3;
/// Most echoes one `ping` sends.
pub const MAX_COUNT: u32 = 100;
/// Most echoes one `lsp-ping` sends (all at once: the initiator's bound).
pub const MAX_LSP_COUNT: u32 = crate::control::services::lsp::MAX_ECHOES as u32;
/// Time between the echoes of a `ping` unless told, in milliseconds (as `ping`'s).
pub const DEFAULT_INTERVAL_MS: u64 = 1000;
/// Shortest time between the echoes of a `ping`, in milliseconds.
pub const MIN_INTERVAL_MS: u64 = ping::MIN_INTERVAL.as_millis() as u64;
/// Longest time between the echoes of a `ping`, in milliseconds.
pub const MAX_INTERVAL_MS: u64 = ping::MAX_INTERVAL.as_millis() as u64;
/// Data bytes of a `ping`'s echoes unless told.
pub const DEFAULT_SIZE: u16 = ping::DEFAULT_SIZE;
/// Most data bytes of a `ping`'s echoes.
pub const MAX_SIZE: u16 = ping::MAX_SIZE;
/// Hops an `lsp-trace` probes unless told.
pub const DEFAULT_MAX_HOPS: u8 = 30;
/// Most hops one `lsp-trace` probes.
pub const MAX_HOPS: u8 = 64;
/// Wait for each echo or hop's reply unless told, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// Longest wait for one echo or hop's reply, in milliseconds.
pub const MAX_TIMEOUT_MS: u64 = 10_000;
/// Longest target name an OAM request takes, in characters.
pub const MAX_TO: usize = 64;

// ---- OAM: the control thread's side ----

// A ping the socket accepts, the initiator accepts.
const _: () = assert!(MAX_COUNT <= ping::MAX_ECHOES as u32);

/// A request the control thread answers (it owns the probes).
#[derive(Debug)]
pub struct OamRequest {
    /// ICMP ping, LSP ping or LSP trace.
    pub kind: OamKind,
    /// The node probed (the egress gateway of an LSP probe), as the
    /// operator named it.
    pub to: String,
    /// Echoes to send (ping; 1 for a trace).
    pub count: u32,
    /// Highest TTL to probe (trace; 255 for a ping, whose echoes go all the way).
    pub max_hops: u8,
    /// How long to wait for each echo's (ping) or hop's (trace) reply;
    /// [`OamRequest::budget`] is the whole request's.
    pub timeout: std::time::Duration,
    /// Time between two echoes (ICMP ping; LSP echoes all go at once).
    pub interval: std::time::Duration,
    /// Data bytes per echo (ICMP ping).
    pub size: u16,
    /// Where the result goes (the server waits for it for the budget plus
    /// [`OAM_MARGIN`], then answers a timeout; a late send fails quietly).
    pub reply: crossbeam::channel::Sender<OamResult>,
}

impl OamRequest {
    /// How long the whole request may take: `timeout` for each echo of an
    /// LSP ping, for each hop of a trace; for an ICMP ping, the intervals
    /// between its echoes and the last one's `timeout`.
    pub fn budget(&self) -> Duration {
        let probes = match self.kind {
            OamKind::Ping => self.count.max(1),
            OamKind::Trace => u32::from(self.max_hops.max(1)),
            OamKind::IcmpPing => {
                return self
                    .interval
                    .saturating_mul(self.count.saturating_sub(1))
                    .saturating_add(self.timeout)
            }
        };
        self.timeout.saturating_mul(probes)
    }
}

/// What an [`OamRequest`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OamKind {
    /// LSP ping (RFC 8029 echo to the egress gateway).
    Ping,
    /// LSP trace: one echo per TTL until the egress answers.
    Trace,
    /// ICMP echo to any node address over its label, paced as `ping`.
    IcmpPing,
}

/// The answer to an [`OamRequest`].
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct OamResult {
    /// The node asked about.
    pub to: String,
    /// One entry per echo (LSP ping, each with ttl 255; ICMP ping, each
    /// with its `seq`) or per TTL (trace).
    pub hops: Vec<OamHop>,
    /// Why the request failed or stopped short (`None`: it ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One echo's reply, or its absence.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
pub struct OamHop {
    /// TTL the echo went out with (MPLS TTL of an LSP echo, IP TTL of
    /// an ICMP echo).
    pub ttl: u8,
    /// ICMP sequence number (ICMP ping).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u32>,
    /// ICMP bytes of the reply, header and data (ICMP ping; `None`: no
    /// reply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u32>,
    /// Who replied (`None`: no reply).
    pub address: Option<std::net::Ipv4Addr>,
    /// The replying node's name, when known.
    pub node: Option<String>,
    /// Round-trip time in microseconds (`None`: no reply).
    pub rtt_us: Option<f64>,
    /// RFC 8029 return code (LSP probes).
    pub return_code: Option<u8>,
    /// What the return code (or its absence) means, for a person.
    pub meaning: String,
}

// ---- answers ----

/// `status`: the node at a glance.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusReply {
    /// Node name.
    pub node: String,
    /// `gateway` or `satellite`.
    pub role: String,
    /// `run-to-completion` or `pipeline`.
    pub mode: String,
    /// Seconds since the node started.
    pub uptime_s: f64,
    /// Epoch of the installed table snapshot.
    pub table_epoch: u64,
    /// The computed routes it holds (`None`: configuration only).
    pub routes: Option<RoutesReply>,
    /// Entries in the snapshot.
    pub entries: EntryCounts,
    /// Ports the FECs and LFIB entries forward on, in port order.
    pub next_hops: Vec<String>,
    /// Frames received, all workers and ports.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Frames dropped.
    pub drops_total: u64,
    /// Drops by reason, the non-zero ones.
    pub drops: Vec<DropCount>,
    /// Worker threads.
    pub workers: Vec<WorkerReply>,
    /// What the service thread answered and refused (`None`: it has none).
    #[serde(default)]
    pub services: Option<ServicesReply>,
}

/// The service thread's counters: the node's own packets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ServicesReply {
    /// Punted frames, answers, probe replies, refusals.
    pub counters: crate::control::service_loop::ServiceCounters,
    /// Refused punted frames by reason, the non-zero ones.
    pub ignored: Vec<DropCount>,
}

/// Which computed routes a snapshot holds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RoutesReply {
    /// Label epoch.
    pub label_epoch: u64,
    /// Geometry time, seconds after the constellation epoch.
    pub t_s: f64,
    /// Why they were installed (`scheduled`, `early`, `failure`).
    pub reason: String,
}

/// How many entries each table holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EntryCounts {
    /// FEC prefixes.
    pub fec: usize,
    /// LFIB labels.
    pub lfib: usize,
    /// SAs, both directions.
    pub sa: usize,
    /// Delivery prefixes.
    pub deliver: usize,
}

/// One worker thread.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WorkerReply {
    /// Index among the workers.
    pub index: usize,
    /// Core it is pinned to.
    pub core: Option<usize>,
    /// `run-to-completion`, `io` or `crypto`.
    pub role: String,
    /// Table epoch of its last burst.
    pub epoch: u64,
    /// Frames it received.
    pub rx_packets: u64,
    /// Frames it sent.
    pub tx_packets: u64,
    /// Frames it dropped.
    pub drops: u64,
}

/// `ports`: per port, the workers' counters and the device's own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PortsReply {
    /// In port order.
    pub ports: Vec<PortReply>,
}

/// One port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct PortReply {
    /// Name.
    pub name: String,
    /// MAC.
    pub mac: String,
    /// Frames the workers received on it.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames the workers sent on it.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// The device's own counters, when the backend has them.
    pub device: Option<DeviceReply>,
}

/// A device's own counters.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceReply {
    /// Frames the device received.
    pub rx_packets: u64,
    /// Frames the device sent.
    pub tx_packets: u64,
    /// Dropped because an RX queue was full.
    pub rx_missed: u64,
    /// Erroneous frames received.
    pub rx_errors: u64,
    /// RX failures for lack of buffers.
    pub rx_nombuf: u64,
    /// Failed transmissions.
    pub tx_errors: u64,
}

/// `drops`: the non-zero counts by reason and their total.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DropsReply {
    /// Non-zero reasons, in counter order.
    pub drops: Vec<DropCount>,
    /// All drops.
    pub total: u64,
}

/// Drops of one reason.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DropCount {
    /// The reason's name (`no_route`, ...).
    pub reason: String,
    /// Frames.
    pub count: u64,
}

/// `tables`: what the installed snapshot forwards by (no key material).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TablesReply {
    /// Snapshot epoch.
    pub table_epoch: u64,
    /// The computed routes it holds (`None`: configuration only).
    pub routes: Option<RoutesReply>,
    /// Largest IP packet through the tunnel.
    pub mtu: usize,
    /// This node's tunnel endpoints.
    pub local_addrs: Vec<Ipv4Addr>,
    /// FEC entries, by prefix.
    pub fec: Vec<FecReply>,
    /// LFIB entries, by label.
    pub lfib: Vec<LfibReply>,
    /// SAs, by SPI (outbound first).
    pub sa: Vec<SaReply>,
    /// Delivery entries, by prefix.
    pub deliver: Vec<DeliverReply>,
}

/// One FEC: prefix -> label, port, next hop.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FecReply {
    /// Prefix.
    pub prefix: String,
    /// Label pushed (`None`: plain ESP, a partner port).
    pub label: Option<u32>,
    /// Port.
    pub port: String,
    /// Next hop's MAC.
    pub next_hop: String,
    /// Outbound SA.
    pub spi: u32,
}

/// One LFIB entry: label -> action, out label, port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LfibReply {
    /// Incoming label.
    pub label: u32,
    /// `swap`, `swap+push` (a local repair), `pop` (and forward) or
    /// `pop-local` (terminate here, or continue with the label below).
    pub action: String,
    /// Swapped-in label.
    pub out_label: Option<u32>,
    /// Labels pushed above it, outermost first (`swap+push`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub push: Vec<u32>,
    /// Port (`None`: terminates here).
    pub port: Option<String>,
    /// Next hop's MAC.
    pub next_hop: Option<String>,
}

/// One SA, without its key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SaReply {
    /// SPI.
    pub spi: u32,
    /// `out` (encrypt) or `in` (decrypt).
    pub dir: String,
    /// Outer source.
    pub tunnel_src: Ipv4Addr,
    /// Outer destination.
    pub tunnel_dst: Ipv4Addr,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Out: sequence numbers used; in: the highest accepted.
    pub seq: u64,
    /// In: the inner sources it admits (empty: any).
    pub sources: Vec<String>,
}

/// `sa`: every SA's lifetime, outbound first, each by SPI.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SaStatusReply {
    /// Snapshot epoch the SAs were read from.
    pub table_epoch: u64,
    /// The SAs.
    pub sas: Vec<SaStatus>,
}

/// One SA's counts, limits, what is left of them, and where it stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SaStatus {
    /// SPI.
    pub spi: u32,
    /// `out` (encrypt) or `in` (decrypt).
    pub dir: String,
    /// Outer source.
    pub tunnel_src: Ipv4Addr,
    /// Outer destination.
    pub tunnel_dst: Ipv4Addr,
    /// Extended sequence numbers.
    pub esn: bool,
    /// `active`, `soft-reached` (a rekey is requested) or `expired`.
    pub state: String,
    /// The soft limits reached (`packets`, `bytes`, `seconds`,
    /// `sequence numbers`).
    pub soft_reached: Vec<String>,
    /// The hard limits reached.
    pub hard_reached: Vec<String>,
    /// Seconds since the SA was installed.
    pub age_s: u64,
    /// Packets protected (out: sealed; in: authenticated).
    pub packets: u64,
    /// Bytes encrypted or decrypted (inner packets, padding and trailer).
    pub bytes: u64,
    /// Out: sequence numbers used; in: the highest accepted.
    pub seq: u64,
    /// The limits configured (none: `null`).
    pub lifetime: crate::sa::Lifetime,
    /// What is left of each soft limit (`0`: reached).
    pub soft_left: crate::sa::Limits,
    /// What is left of each hard limit.
    pub hard_left: crate::sa::Limits,
    /// An outbound SA without ESN: sequence numbers left before its
    /// implicit soft and hard limits.
    pub seq_left: Option<SeqLeft>,
}

/// Sequence numbers an outbound SA without ESN has left.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqLeft {
    /// Before the rekey request.
    pub soft: u64,
    /// Before the SA expires (2^32-1 used).
    pub hard: u64,
}

/// One delivery entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DeliverReply {
    /// Prefix.
    pub prefix: String,
    /// Port.
    pub port: String,
    /// Next hop's MAC.
    pub next_hop: String,
}

// ---- requests ----

/// One request line.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
enum Request {
    Status,
    Tables,
    Ports,
    Drops,
    Sa,
    Bfd,
    Failures,
    Ike,
    Ping {
        to: String,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        interval_ms: Option<u64>,
        #[serde(default)]
        timeout_ms: Option<u64>,
        #[serde(default)]
        size: Option<u32>,
    },
    LspPing {
        to: String,
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    LspTrace {
        to: String,
        #[serde(default)]
        max_hops: Option<u32>,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

/// Parses one request line; the error is the message to answer.
fn parse_request(line: &[u8]) -> Result<Request, String> {
    serde_json::from_slice(line).map_err(|e| {
        format!(
            "not a request ({e}); send one JSON object per line, such as {{\"cmd\":\"status\"}} \
             (commands: status, tables, ports, drops, ping, lsp-ping, lsp-trace)"
        )
    })
}

/// `{"error": msg}`.
pub fn error_json(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

// ---- the server ----

/// The management socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    /// Another process listens on the path.
    #[error(
        "management socket {}: another process is listening there (is this node already \
         running?); stop it, or give this node another path with [node] socket or --socket",
        .0.display()
    )]
    InUse(PathBuf),
    /// Something other than a socket is in the way.
    #[error(
        "management socket {}: the path exists and is not a socket; remove it or choose \
         another path ([node] socket, --socket)",
        .0.display()
    )]
    NotASocket(PathBuf),
    /// The path is not ours to create (no root, a directory of another user).
    #[error(
        "management socket {}: {what}: permission denied; run the node as root, or give it \
         a path it may create with [node] socket or --socket (--no-socket runs it without one)",
        .path.display()
    )]
    Denied {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
    },
    /// A system call failed.
    #[error("management socket {}: {what}: {source}", .path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
}

impl MgmtError {
    /// `what` on `path` failed with `source`.
    fn io(path: &Path, what: &'static str, source: std::io::Error) -> MgmtError {
        let path = path.to_path_buf();
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            MgmtError::Denied { path, what }
        } else {
            MgmtError::Io { path, what, source }
        }
    }
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct MgmtOptions {
    /// Where to listen.
    pub path: PathBuf,
    /// Whether a control thread answers ping, lsp-ping and lsp-trace: then
    /// [`MgmtServer::start`] returns the receiving end of their channel.
    pub oam: bool,
    /// Most connections served at once.
    pub max_connections: usize,
    /// How long writing one answer may take.
    pub write_timeout: Duration,
    /// How long a connection may wait between requests.
    pub idle_timeout: Duration,
}

impl MgmtOptions {
    /// The defaults, listening on `path`, without OAM.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        MgmtOptions {
            path: path.into(),
            oam: false,
            max_connections: MAX_CONNECTIONS,
            write_timeout: WRITE_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// What the server reports on.
#[derive(Clone, Debug)]
pub struct MgmtNode {
    /// Node name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Live counters.
    pub hub: Arc<StatsHub>,
    /// The table snapshot workers read.
    pub store: Arc<TableStore>,
    /// The service thread's counters, when it runs.
    pub services: Option<Arc<crate::control::service_loop::ServiceStats>>,
}

/// The server's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MgmtCounters {
    /// Connections served.
    pub accepted: u64,
    /// Connections refused for their peer's uid (or unknown credentials).
    pub refused_peer: u64,
    /// Connections refused because [`MgmtOptions::max_connections`] were open.
    pub refused_busy: u64,
    /// Requests answered (including errors).
    pub requests: u64,
    /// Requests that were too long or not valid (the connection was closed).
    pub bad_requests: u64,
    /// Clients dropped because an answer could not be written in time or
    /// they had gone.
    pub dropped: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused_peer: AtomicU64,
    refused_busy: AtomicU64,
    requests: AtomicU64,
    bad_requests: AtomicU64,
    dropped: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Everything the threads share.
struct Shared {
    node: MgmtNode,
    opts: MgmtOptions,
    oam: Option<Sender<OamRequest>>,
    stop: AtomicBool,
    active: AtomicUsize,
    counters: Counters,
    euid: u32,
}

/// A running management server; stops (and removes its socket) when
/// stopped or dropped.
pub struct MgmtServer {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Device and inode of the socket file we created: only that file is
    /// removed at exit (not one a later node put there).
    file: Option<(u64, u64)>,
}

impl std::fmt::Debug for MgmtServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MgmtServer")
            .field("path", &self.shared.opts.path)
            .finish()
    }
}

/// Whether a peer with `uid` may use the socket of a node running as `euid`:
/// root and the node's own user only.
pub fn peer_allowed(uid: u32, euid: u32) -> bool {
    uid == 0 || uid == euid
}

impl MgmtServer {
    /// Listens on `opts.path` and serves `node` from a thread of its own.
    ///
    /// The socket's directory is created (0755) if missing; a socket file
    /// there that nobody listens on any more is replaced, one another
    /// process listens on is an error ([`MgmtError::InUse`]). The socket
    /// is made mode 0600. With `opts.oam`, the second value is the end the
    /// control thread receives OAM requests from; until one is taken from
    /// it nothing answers them (they time out), and once it is dropped
    /// they are answered at once that no responder runs.
    pub fn start(
        opts: MgmtOptions,
        node: MgmtNode,
    ) -> Result<(MgmtServer, Option<Receiver<OamRequest>>), MgmtError> {
        let path = opts.path.clone();
        let listener = bind(&path)?;
        // From here on a failure takes the socket file along.
        let undo = |what: &'static str| {
            let path = path.clone();
            move |source| {
                let _ = std::fs::remove_file(&path);
                MgmtError::io(&path, what, source)
            }
        };
        let meta = std::fs::symlink_metadata(&path).map_err(undo("reading it back"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(undo("making it mode 0600"))?;
        listener
            .set_nonblocking(true)
            .map_err(undo("making it non-blocking"))?;
        let (oam, rx) = if opts.oam {
            let (tx, rx) = channel::bounded(OAM_QUEUE);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let shared = Arc::new(Shared {
            node,
            opts,
            oam,
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            counters: Counters::default(),
            euid: rustix::process::geteuid().as_raw(),
        });
        let s = Arc::clone(&shared);
        let file = Some((meta.dev(), meta.ino()));
        let thread = std::thread::Builder::new()
            .name("mgmt".into())
            .spawn(move || serve(&listener, &s));
        let mut server = MgmtServer {
            shared,
            thread: None,
            file,
        };
        // On failure `server` is dropped here and removes the socket file.
        server.thread = Some(thread.map_err(|e| MgmtError::io(&path, "starting its thread", e))?);
        tracing::info!(path = %path.display(), "management socket listening (meshplane ctl)");
        Ok((server, rx))
    }

    /// Where it listens.
    pub fn path(&self) -> &Path {
        &self.shared.opts.path
    }

    /// Its counters so far.
    pub fn counters(&self) -> MgmtCounters {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MgmtCounters {
            accepted: get(&c.accepted),
            refused_peer: get(&c.refused_peer),
            refused_busy: get(&c.refused_busy),
            requests: get(&c.requests),
            bad_requests: get(&c.bad_requests),
            dropped: get(&c.dropped),
        }
    }

    /// Stops accepting, ends every connection (within the write timeout),
    /// and removes the socket file.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some((dev, ino)) = self.file.take() {
            let path = &self.shared.opts.path;
            let ours =
                std::fs::symlink_metadata(path).is_ok_and(|m| m.dev() == dev && m.ino() == ino);
            if ours {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(path = %path.display(), "removing the management socket: {e}");
                }
            }
        }
    }
}

impl Drop for MgmtServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Binds `path`, creating its directory and replacing a stale socket.
fn bind(path: &Path) -> Result<UnixListener, MgmtError> {
    let io = |what: &'static str| move |source| MgmtError::io(path, what, source);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(io("creating its directory"))?;
        }
    }
    match UnixListener::bind(path) {
        Ok(l) => return Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {}
        Err(e) => return Err(io("binding")(e)),
    }
    let meta = std::fs::symlink_metadata(path).map_err(io("looking at what is there"))?;
    if !meta.file_type().is_socket() {
        return Err(MgmtError::NotASocket(path.to_path_buf()));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(MgmtError::InUse(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing a stale management socket (nothing listens on it)");
            std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
            UnixListener::bind(path).map_err(io("binding"))
        }
        Err(e) => Err(io("probing the socket already there")(e)),
    }
}

/// Waits up to `timeout` for a connection to accept.
fn readable(listener: &UnixListener, timeout: Duration) -> std::io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(listener, PollFlags::IN)];
    let t = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    match poll(&mut fds, Some(&t)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The accept loop: admits each connection to a thread of its own, at most
/// `max_connections` at once, until the stop flag; then waits for them.
fn serve(listener: &UnixListener, shared: &Arc<Shared>) {
    let mut conns: Vec<std::thread::JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::Relaxed) {
        conns.retain(|h| !h.is_finished());
        match readable(listener, POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!("management socket: poll: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(h) = admit(stream, shared) {
                    conns.push(h);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                // Out of descriptors, say: the client is left in the backlog.
                tracing::warn!("management socket: accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    for h in conns {
        let _ = h.join();
    }
}

/// Holds one of the `max_connections` places while a connection is served.
struct Place(Arc<Shared>);

impl Place {
    fn take(shared: &Arc<Shared>) -> Option<Place> {
        let max = shared.opts.max_connections;
        shared
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Place(Arc::clone(shared)))
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Checks the peer and the connection bound; serves the connection on a
/// thread of its own.
fn admit(stream: UnixStream, shared: &Arc<Shared>) -> Option<std::thread::JoinHandle<()>> {
    let uid = match rustix::net::sockopt::socket_peercred(&stream) {
        Ok(c) => c.uid.as_raw(),
        Err(e) => {
            tracing::debug!("management socket: no peer credentials ({e}); closing");
            bump(&shared.counters.refused_peer);
            return None;
        }
    };
    if !peer_allowed(uid, shared.euid) {
        tracing::debug!(uid, "management socket: refusing a peer of another user");
        bump(&shared.counters.refused_peer);
        refuse(
            stream,
            &format!(
                "permission denied: uid {uid} may not use this node's management socket \
                 (root and uid {} may)",
                shared.euid
            ),
        );
        return None;
    }
    let Some(place) = Place::take(shared) else {
        tracing::debug!(
            "management socket: {} connections open; refusing one",
            shared.opts.max_connections
        );
        bump(&shared.counters.refused_busy);
        refuse(
            stream,
            &format!(
                "busy: {} connections are open to this node; try again",
                shared.opts.max_connections
            ),
        );
        return None;
    };
    bump(&shared.counters.accepted);
    let s = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("mgmt-conn".into())
        .spawn(move || {
            let _place = place;
            Connection {
                stream,
                shared: &s,
                buf: Vec::new(),
            }
            .run();
        });
    match spawned {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!("management socket: cannot start a connection thread: {e}");
            None
        }
    }
}

/// Answers `msg` as an error without waiting (a fresh connection's buffer
/// holds it) and closes.
fn refuse(stream: UnixStream, msg: &str) {
    let mut stream = stream;
    let _ = stream.set_nonblocking(true);
    let mut line = error_json(msg);
    line.push('\n');
    let _ = stream.write_all(line.as_bytes());
}

/// What reading a request gave.
enum Incoming {
    /// One line (without its end).
    Line(Vec<u8>),
    /// Longer than [`MAX_REQUEST`].
    TooLong,
    /// The client closed, went idle too long, or the server stops.
    Done,
}

/// One client's connection.
struct Connection<'a> {
    stream: UnixStream,
    shared: &'a Shared,
    /// Bytes read past the last request.
    buf: Vec<u8>,
}

impl Connection<'_> {
    fn run(mut self) {
        let c = &self.shared.counters;
        loop {
            let line = match self.next_request() {
                Incoming::Line(l) => l,
                Incoming::TooLong => {
                    bump(&c.requests);
                    bump(&c.bad_requests);
                    let msg = format!(
                        "request longer than {MAX_REQUEST} bytes; send one JSON object per line"
                    );
                    let _ = self.send(&error_json(&msg));
                    return;
                }
                Incoming::Done => return,
            };
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            bump(&c.requests);
            let (answer, keep) = match parse_request(&line) {
                Ok(req) => (self.answer(req), true),
                Err(msg) => {
                    bump(&c.bad_requests);
                    (error_json(&msg), false)
                }
            };
            if let Err(e) = self.send(&answer) {
                tracing::debug!("management socket: dropping a client: {e}");
                bump(&c.dropped);
                return;
            }
            if !keep {
                return;
            }
        }
    }

    /// The next request line, waiting at most the idle timeout.
    fn next_request(&mut self) -> Incoming {
        let idle_until = Instant::now() + self.shared.opts.idle_timeout;
        let mut chunk = [0u8; 1024];
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                if end > MAX_REQUEST {
                    return Incoming::TooLong;
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Incoming::Line(line);
            }
            if self.buf.len() > MAX_REQUEST {
                return Incoming::TooLong;
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                return Incoming::Done;
            }
            let left = idle_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::debug!("management socket: closing an idle connection");
                return Incoming::Done;
            }
            if self.stream.set_read_timeout(Some(POLL.min(left))).is_err() {
                return Incoming::Done;
            }
            // Never more than one byte past the longest line.
            let want = (MAX_REQUEST + 1 - self.buf.len()).min(chunk.len());
            match self.stream.read(&mut chunk[..want]) {
                // The client is done sending: a last line without its end
                // still counts.
                Ok(0) if self.buf.is_empty() => return Incoming::Done,
                Ok(0) => return Incoming::Line(std::mem::take(&mut self.buf)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Incoming::Done,
            }
        }
    }

    /// Writes `answer` and its `\n` within the write timeout.
    fn send(&mut self, answer: &str) -> std::io::Result<()> {
        let until = Instant::now() + self.shared.opts.write_timeout;
        let mut bytes = Vec::with_capacity(answer.len() + 1);
        bytes.extend_from_slice(answer.as_bytes());
        bytes.push(b'\n');
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client reads no answer",
                ));
            }
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    // The timeout passed mid-write: the loop says so.
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn answer(&self, req: Request) -> String {
        let node = &self.shared.node;
        let json = |v: Result<String, serde_json::Error>| {
            v.unwrap_or_else(|e| error_json(&format!("encoding the answer: {e}")))
        };
        match req {
            Request::Status => json(serde_json::to_string(&status(node))),
            Request::Tables => {
                let t = node.store.load_full();
                json(serde_json::to_string(&tables(&t)))
            }
            Request::Ports => json(serde_json::to_string(&ports(node))),
            Request::Drops => json(serde_json::to_string(&drops(node))),
            Request::Sa => {
                let t = node.store.load_full();
                json(serde_json::to_string(&sa_status(&t, Instant::now())))
            }
            Request::Failures => json(serde_json::to_string(
                &node.services.as_ref().and_then(|s| s.flood()),
            )),
            Request::Ike => {
                let t = node.store.load_full();
                json(serde_json::to_string(
                    &node
                        .services
                        .as_ref()
                        .and_then(|s| s.ike())
                        .map(|v| v.with_lifetimes(&t, Instant::now())),
                ))
            }
            Request::Bfd => json(serde_json::to_string(
                &node.services.as_ref().map(|s| s.bfd()).unwrap_or_default(),
            )),
            Request::Ping {
                to,
                count,
                interval_ms,
                timeout_ms,
                size,
            } => self.oam(
                OamKind::IcmpPing,
                to,
                OamParams {
                    count,
                    interval_ms,
                    timeout_ms,
                    size,
                    ..OamParams::default()
                },
            ),
            Request::LspPing {
                to,
                count,
                timeout_ms,
            } => self.oam(
                OamKind::Ping,
                to,
                OamParams {
                    count,
                    timeout_ms,
                    ..OamParams::default()
                },
            ),
            Request::LspTrace {
                to,
                max_hops,
                timeout_ms,
            } => self.oam(
                OamKind::Trace,
                to,
                OamParams {
                    max_hops,
                    timeout_ms,
                    ..OamParams::default()
                },
            ),
        }
    }

    /// Hands an OAM request to the control thread and waits for its result.
    fn oam(&self, kind: OamKind, to: String, params: OamParams) -> String {
        let req = match oam_request(kind, to, params) {
            Ok(r) => r,
            Err(msg) => return error_json(&msg),
        };
        let Some(tx) = &self.shared.oam else {
            return error_json(
                "this node runs no control thread (its configuration has no [control] \
                 section), and ping, lsp-ping and lsp-trace run there",
            );
        };
        let (reply, result) = channel::bounded(1);
        let req = OamRequest { reply, ..req };
        let wait = req.budget().saturating_add(OAM_MARGIN);
        match tx.try_send(req) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return error_json(&format!(
                    "busy: {OAM_QUEUE} ping/lsp-ping/lsp-trace requests are already waiting \
                     for the control thread; try again"
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return error_json(
                    "no OAM responder: the node's control thread does not answer \
                     ping/lsp-ping/lsp-trace",
                )
            }
        }
        let until = Instant::now() + wait;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
                return error_json("the node is stopping");
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return error_json(&format!(
                    "no answer from the control thread within {} ms (no OAM responder?)",
                    wait.as_millis()
                ));
            }
            match result.recv_timeout(POLL.min(left)) {
                Ok(r) => {
                    return serde_json::to_string(&r)
                        .unwrap_or_else(|e| error_json(&format!("encoding the answer: {e}")))
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return error_json("the control thread dropped the request without an answer")
                }
            }
        }
    }
}

/// An OAM request's optional fields, as the client sent them.
#[derive(Clone, Copy, Debug, Default)]
struct OamParams {
    count: Option<u32>,
    max_hops: Option<u32>,
    timeout_ms: Option<u64>,
    interval_ms: Option<u64>,
    size: Option<u32>,
}

/// Validates an OAM request's fields (its reply channel is a placeholder).
fn oam_request(kind: OamKind, to: String, params: OamParams) -> Result<OamRequest, String> {
    let OamParams {
        count,
        max_hops,
        timeout_ms,
        interval_ms,
        size,
    } = params;
    if to.trim().is_empty() {
        return Err(match kind {
            OamKind::IcmpPing => "\"to\" is empty: name the node to ping".into(),
            _ => "\"to\" is empty: name the egress gateway".into(),
        });
    }
    if to.chars().count() > MAX_TO || to.chars().any(char::is_control) {
        return Err(format!(
            "\"to\" {}: want a node's name or address of at most {MAX_TO} characters",
            crate::config::echo(&to)
        ));
    }
    let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(format!(
            "timeout_ms {timeout_ms}: want 1 to {MAX_TIMEOUT_MS} (the wait for each reply)"
        ));
    }
    let (count, max_hops) = match kind {
        OamKind::Ping | OamKind::IcmpPing => {
            let count = count.unwrap_or(DEFAULT_COUNT);
            let max = match kind {
                OamKind::Ping => MAX_LSP_COUNT,
                _ => MAX_COUNT,
            };
            if !(1..=max).contains(&count) {
                return Err(format!("count {count}: want 1 to {max} echoes"));
            }
            (count, u8::MAX)
        }
        OamKind::Trace => {
            let hops = max_hops.unwrap_or(u32::from(DEFAULT_MAX_HOPS));
            match u8::try_from(hops) {
                Ok(h) if (1..=MAX_HOPS).contains(&h) => (1, h),
                _ => return Err(format!("max_hops {hops}: want 1 to {MAX_HOPS}")),
            }
        }
    };
    // LSP echoes all go at once and carry no data of the operator's.
    let (interval, size) = if kind == OamKind::IcmpPing {
        let interval_ms = interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
        if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
            return Err(format!(
                "interval_ms {interval_ms}: want {MIN_INTERVAL_MS} to {MAX_INTERVAL_MS} \
                 (the time between echoes)"
            ));
        }
        let bytes = size.unwrap_or(u32::from(DEFAULT_SIZE));
        match u16::try_from(bytes) {
            Ok(b) if b <= MAX_SIZE => (Duration::from_millis(interval_ms), b),
            _ => return Err(format!("size {bytes}: want 0 to {MAX_SIZE} data bytes")),
        }
    } else {
        (Duration::ZERO, 0)
    };
    let (reply, _) = channel::bounded(1);
    Ok(OamRequest {
        kind,
        to,
        count,
        max_hops,
        timeout: Duration::from_millis(timeout_ms),
        interval,
        size,
        reply,
    })
}

// ---- building the answers ----

fn role_name(r: Role) -> &'static str {
    match r {
        Role::Gateway => "gateway",
        Role::Satellite => "satellite",
    }
}

fn worker_role_name(r: WorkerRole) -> &'static str {
    match r {
        WorkerRole::RunToCompletion => "run-to-completion",
        WorkerRole::Io => "io",
        WorkerRole::Crypto => "crypto",
    }
}

fn drop_counts(d: &crate::drop_reason::DropCounters) -> Vec<DropCount> {
    DropReason::ALL
        .iter()
        .filter(|r| d.get(**r) > 0)
        .map(|r| DropCount {
            reason: r.name().to_string(),
            count: d.get(*r),
        })
        .collect()
}

fn routes(t: &Tables) -> Option<RoutesReply> {
    t.routes.map(|r| RoutesReply {
        label_epoch: r.label_epoch,
        t_s: r.t_s,
        reason: r.reason.to_string(),
    })
}

fn status(node: &MgmtNode) -> StatusReply {
    let snap = node.hub.snapshot();
    let t = node.store.load_full();
    let mut used = vec![false; t.port_names.len()];
    let mut mark = |p: u16| {
        if let Some(u) = used.get_mut(usize::from(p)) {
            *u = true;
        }
    };
    t.fecs.iter().for_each(|f| mark(f.port));
    t.lfib
        .iter()
        .filter(|(_, e)| e.op != LfibOp::PopLocal)
        .for_each(|(_, e)| mark(e.port));
    let next_hops = t
        .port_names
        .iter()
        .zip(&used)
        .filter(|(_, u)| **u)
        .map(|(n, _)| n.clone())
        .collect();
    let total = &snap.total;
    StatusReply {
        node: node.name.clone(),
        role: role_name(node.role).into(),
        mode: snap.mode.name().into(),
        uptime_s: snap.elapsed.as_secs_f64(),
        table_epoch: t.epoch,
        routes: routes(&t),
        entries: EntryCounts {
            fec: t.fec_prefixes.len(),
            lfib: t.lfib.len(),
            sa: t.sa_out.len() + t.sa_in.len(),
            deliver: t.deliver_prefixes.len(),
        },
        next_hops,
        rx_packets: total.rx_packets(),
        rx_bytes: total.rx_bytes(),
        tx_packets: total.tx_packets(),
        tx_bytes: total.tx_bytes(),
        drops_total: total.drops.total(),
        drops: drop_counts(&total.drops),
        workers: snap
            .workers
            .iter()
            .map(|w| WorkerReply {
                index: w.info.index,
                core: w.info.core,
                role: worker_role_name(w.info.role).into(),
                epoch: w.epoch,
                rx_packets: w.stats.rx_packets(),
                tx_packets: w.stats.tx_packets(),
                drops: w.stats.drops.total(),
            })
            .collect(),
        services: node.services.as_ref().map(|st| {
            let (counters, ignored) = st.read();
            ServicesReply {
                counters,
                ignored: crate::control::services::Ignored::ALL
                    .iter()
                    .filter(|r| ignored.get(**r) > 0)
                    .map(|r| DropCount {
                        reason: r.name().into(),
                        count: ignored.get(*r),
                    })
                    .collect(),
            }
        }),
    }
}

fn ports(node: &MgmtNode) -> PortsReply {
    let snap = node.hub.snapshot();
    let t = node.store.load_full();
    let ports = snap
        .port_names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let p = snap.total.ports.get(i).copied().unwrap_or_default();
            let mac: Option<&Mac> = t.port_macs.get(i);
            PortReply {
                name: name.clone(),
                mac: mac.map(format_mac).unwrap_or_default(),
                rx_packets: p.rx_packets,
                rx_bytes: p.rx_bytes,
                tx_packets: p.tx_packets,
                tx_bytes: p.tx_bytes,
                device: snap.devices.get(i).map(|d| DeviceReply {
                    rx_packets: d.rx_packets,
                    tx_packets: d.tx_packets,
                    rx_missed: d.rx_missed,
                    rx_errors: d.rx_errors,
                    rx_nombuf: d.rx_nombuf,
                    tx_errors: d.tx_errors,
                }),
            }
        })
        .collect();
    PortsReply { ports }
}

fn drops(node: &MgmtNode) -> DropsReply {
    let snap = node.hub.snapshot();
    DropsReply {
        drops: drop_counts(&snap.total.drops),
        total: snap.total.drops.total(),
    }
}

/// The snapshot as shown: sorted, with port names, never a key.
pub fn tables(t: &Tables) -> TablesReply {
    let port = |p: u16| {
        t.port_names
            .get(usize::from(p))
            .cloned()
            .unwrap_or_else(|| format!("#{p}"))
    };
    let mut fec_prefixes = t.fec_prefixes.clone();
    fec_prefixes.sort_by_key(|(p, _)| (p.addr, p.len));
    let fec = fec_prefixes
        .iter()
        .filter_map(|(prefix, i)| {
            let f = t.fecs.get(*i as usize)?;
            Some(FecReply {
                prefix: prefix.to_string(),
                label: f.label,
                port: port(f.port),
                next_hop: format_mac(&f.dst_mac),
                spi: t.sa_out.get(f.sa as usize).map_or(0, |s| s.spi),
            })
        })
        .collect();
    let lfib = t
        .lfib
        .iter()
        .map(|(label, e)| {
            let (action, out_label, forwards) = match e.op {
                LfibOp::Swap(out) => ("swap", Some(out), true),
                LfibOp::SwapPush(out, _) => ("swap+push", Some(out), true),
                LfibOp::Pop => ("pop", None, true),
                LfibOp::PopLocal => ("pop-local", None, false),
            };
            let push = match e.op {
                LfibOp::SwapPush(_, i) => t.lfib.stack(i).to_vec(),
                _ => Vec::new(),
            };
            LfibReply {
                label,
                action: action.into(),
                out_label,
                push,
                port: forwards.then(|| port(e.port)),
                next_hop: forwards.then(|| format_mac(&e.dst_mac())),
            }
        })
        .collect();
    let mut sa: Vec<SaReply> = t
        .sa_out
        .iter()
        .map(|s| SaReply {
            spi: s.spi,
            dir: "out".into(),
            tunnel_src: s.tunnel_src,
            tunnel_dst: s.tunnel_dst,
            esn: s.esn,
            seq: s.sent(),
            sources: Vec::new(),
        })
        .collect();
    sa.sort_by_key(|s| s.spi);
    let mut inbound: Vec<SaReply> = t
        .sa_in
        .values()
        .map(|i| SaReply {
            spi: i.sa.spi,
            dir: "in".into(),
            tunnel_src: i.sa.tunnel_src,
            tunnel_dst: i.sa.tunnel_dst,
            esn: i.sa.esn,
            seq: i.sa.window.top(),
            sources: i.sources.iter().map(|p| p.to_string()).collect(),
        })
        .collect();
    inbound.sort_by_key(|s| s.spi);
    sa.extend(inbound);
    let mut deliver_prefixes = t.deliver_prefixes.clone();
    deliver_prefixes.sort_by_key(|(p, _)| (p.addr, p.len));
    let deliver = deliver_prefixes
        .iter()
        .filter_map(|(prefix, i)| {
            let d = t.delivers.get(*i as usize)?;
            Some(DeliverReply {
                prefix: prefix.to_string(),
                port: port(d.port),
                next_hop: format_mac(&d.dst_mac),
            })
        })
        .collect();
    TablesReply {
        table_epoch: t.epoch,
        routes: routes(t),
        mtu: t.mtu,
        local_addrs: t.local_addrs.clone(),
        fec,
        lfib,
        sa,
        deliver,
    }
}

/// Every SA's lifetime at `now`: outbound by SPI, then inbound by SPI.
pub fn sa_status(t: &Tables, now: Instant) -> SaStatusReply {
    use crate::sa::lifetime::SaLife;
    #[allow(clippy::too_many_arguments)]
    fn one(
        spi: u32,
        dir: &str,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        esn: bool,
        seq: u64,
        life: &SaLife,
        now: Instant,
    ) -> SaStatus {
        let (soft_left, hard_left) = life.left(now);
        SaStatus {
            spi,
            dir: dir.into(),
            tunnel_src: src,
            tunnel_dst: dst,
            esn,
            state: life.state().name().into(),
            soft_reached: life
                .soft_reached()
                .names()
                .iter()
                .map(|n| n.to_string())
                .collect(),
            hard_reached: life
                .hard_reached()
                .names()
                .iter()
                .map(|n| n.to_string())
                .collect(),
            age_s: life.age_s(now),
            packets: life.packets(),
            bytes: life.bytes(),
            seq,
            lifetime: life.lifetime(),
            soft_left,
            hard_left,
            seq_left: life
                .seq_left(seq)
                .map(|(soft, hard)| SeqLeft { soft, hard }),
        }
    }
    let mut out: Vec<SaStatus> = t
        .sa_out
        .iter()
        .map(|s| {
            let seq = s.sent();
            one(
                s.spi,
                "out",
                s.tunnel_src,
                s.tunnel_dst,
                s.esn,
                seq,
                &s.life,
                now,
            )
        })
        .collect();
    out.sort_by_key(|s| s.spi);
    let mut inbound: Vec<SaStatus> = t
        .sa_in
        .values()
        .map(|i| {
            let s = &i.sa;
            one(
                s.spi,
                "in",
                s.tunnel_src,
                s.tunnel_dst,
                s.esn,
                s.window.top(),
                &s.life,
                now,
            )
        })
        .collect();
    inbound.sort_by_key(|s| s.spi);
    out.extend(inbound);
    SaStatusReply {
        table_epoch: t.epoch,
        sas: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_our_own_user_may_connect_no_one_else() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(!peer_allowed(65534, 0));
        assert!(peer_allowed(0, 0));
    }

    #[test]
    fn a_path_the_node_may_not_create_says_how_to_run_it() {
        let e = MgmtError::io(
            Path::new("/run/meshplane/n.sock"),
            "creating its directory",
            std::io::ErrorKind::PermissionDenied.into(),
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("management socket /run/meshplane/n.sock: creating its directory: permission denied;"),
            "{msg}"
        );
        assert!(
            msg.contains("--socket") && msg.contains("--no-socket"),
            "{msg}"
        );
        let e = MgmtError::io(
            Path::new("/x"),
            "binding",
            std::io::ErrorKind::AddrNotAvailable.into(),
        );
        assert!(matches!(e, MgmtError::Io { .. }), "{e}");
    }

    #[test]
    fn requests_parse_by_command_and_garbage_is_told_how_to_ask() {
        assert_eq!(parse_request(br#"{"cmd":"status"}"#), Ok(Request::Status));
        assert_eq!(
            parse_request(br#"{"cmd":"lsp-ping","to":"gs:1","count":2}"#),
            Ok(Request::LspPing {
                to: "gs:1".into(),
                count: Some(2),
                timeout_ms: None
            })
        );
        assert_eq!(
            parse_request(br#"{"cmd":"ping","to":"sat:5","interval_ms":200,"size":100}"#),
            Ok(Request::Ping {
                to: "sat:5".into(),
                count: None,
                interval_ms: Some(200),
                timeout_ms: None,
                size: Some(100),
            })
        );
        for bad in [
            &b"hello"[..],
            br#"{"cmd":"reboot"}"#,
            br#"{"cmd":"lsp-ping"}"#,
            br#"{"cmd":"ping"}"#,
            br#"{"cmd":"ping","to":"x","max_hops":3}"#,
            br#"{"cmd":"ping","to":"x","size":-1}"#,
            br#"{"cmd":"lsp-ping","to":"x","count":-1}"#,
            br#"{"cmd":"lsp-trace","to":"x","hops":3}"#,
            b"\xff\xfe",
        ] {
            let e = parse_request(bad).expect_err("refused");
            assert!(e.contains("{\"cmd\":\"status\"}"), "{e}");
        }
    }

    /// The fields of an LSP request.
    fn lsp(count: Option<u32>, max_hops: Option<u32>, timeout_ms: Option<u64>) -> OamParams {
        OamParams {
            count,
            max_hops,
            timeout_ms,
            ..OamParams::default()
        }
    }

    /// The fields of an ICMP ping request.
    fn icmp(count: Option<u32>, interval_ms: Option<u64>, size: Option<u32>) -> OamParams {
        OamParams {
            count,
            interval_ms,
            size,
            ..OamParams::default()
        }
    }

    #[test]
    fn oam_requests_are_bounded_and_budgeted_per_probe() {
        let ping =
            oam_request(OamKind::Ping, "gs:1".into(), lsp(Some(4), None, Some(250))).expect("ping");
        assert_eq!((ping.count, ping.max_hops), (4, 255));
        assert_eq!(ping.budget(), Duration::from_millis(1000));
        let trace =
            oam_request(OamKind::Trace, "gs:1".into(), lsp(None, None, None)).expect("trace");
        assert_eq!((trace.count, trace.max_hops), (1, DEFAULT_MAX_HOPS));
        assert_eq!(trace.budget(), Duration::from_secs(30));
        for (kind, count, hops, t) in [
            (OamKind::Ping, Some(0), None, None),
            (OamKind::Ping, Some(MAX_LSP_COUNT + 1), None, None),
            (OamKind::Trace, None, Some(0), None),
            (OamKind::Trace, None, Some(300), None),
            (OamKind::Ping, None, None, Some(0)),
            (OamKind::Ping, None, None, Some(MAX_TIMEOUT_MS + 1)),
            (OamKind::IcmpPing, Some(0), None, None),
            (OamKind::IcmpPing, Some(MAX_COUNT + 1), None, None),
            (OamKind::IcmpPing, None, None, Some(MAX_TIMEOUT_MS + 1)),
        ] {
            assert!(oam_request(kind, "gs:1".into(), lsp(count, hops, t)).is_err());
        }
        assert!(oam_request(OamKind::Ping, " ".into(), lsp(None, None, None)).is_err());
        assert!(oam_request(OamKind::Ping, "a\nb".into(), lsp(None, None, None)).is_err());
    }

    #[test]
    fn icmp_pings_are_bounded_and_budgeted_by_their_pacing() {
        let r = oam_request(OamKind::IcmpPing, "sat:5".into(), icmp(None, None, None))
            .expect("defaults");
        assert_eq!(
            (r.count, r.interval, r.size, r.timeout),
            (
                DEFAULT_COUNT,
                Duration::from_millis(DEFAULT_INTERVAL_MS),
                DEFAULT_SIZE,
                Duration::from_millis(DEFAULT_TIMEOUT_MS)
            )
        );
        // Two intervals, then the last echo's wait.
        assert_eq!(r.budget(), Duration::from_secs(3));
        let r = oam_request(
            OamKind::IcmpPing,
            "sat:5".into(),
            OamParams {
                count: Some(5),
                interval_ms: Some(MIN_INTERVAL_MS),
                timeout_ms: Some(250),
                size: Some(u32::from(MAX_SIZE)),
                ..OamParams::default()
            },
        )
        .expect("at the bounds");
        assert_eq!(r.budget(), Duration::from_millis(4 * 10 + 250));
        assert_eq!(r.size, MAX_SIZE);
        for (p, want) in [
            (
                icmp(None, Some(MIN_INTERVAL_MS - 1), None),
                "interval_ms 9: want 10 to 10000",
            ),
            (
                icmp(None, Some(MAX_INTERVAL_MS + 1), None),
                "interval_ms 10001",
            ),
            (
                icmp(None, None, Some(u32::from(MAX_SIZE) + 1)),
                "size 1401: want 0 to 1400",
            ),
            (icmp(None, None, Some(u32::MAX)), "size 4294967295"),
            (icmp(Some(MAX_COUNT + 1), None, None), "count 101"),
        ] {
            let e = oam_request(OamKind::IcmpPing, "x".into(), p).expect_err("refused");
            assert!(e.starts_with(want), "{e}");
        }
        let e =
            oam_request(OamKind::IcmpPing, "".into(), icmp(None, None, None)).expect_err("empty");
        assert!(e.contains("name the node to ping"), "{e}");
        // LSP probes carry no interval or data.
        let r = oam_request(
            OamKind::Ping,
            "gs:1".into(),
            icmp(None, Some(5), Some(9999)),
        )
        .expect("ignored for LSP");
        assert_eq!((r.interval, r.size), (Duration::ZERO, 0));
    }

    #[test]
    fn the_sa_answer_gives_counts_limits_what_is_left_and_the_state() {
        let hops = crate::chain::default_chain().expect("chain");
        let mut cfg = hops[0].node.clone();
        cfg.sa[0].lifetime = crate::sa::Lifetime {
            soft: crate::sa::Limits {
                packets: Some(100),
                ..crate::sa::Limits::NONE
            },
            hard: crate::sa::Limits {
                packets: Some(300),
                seconds: Some(3600),
                ..crate::sa::Limits::NONE
            },
        };
        let t = Tables::from_config(&cfg, 2).expect("tables");
        let installed = t.sa_out[0].life.installed();
        let _ = t.sa_out[0].reserve_seq(150);
        t.sa_out[0].life.count(150, 15_000);
        let r = sa_status(&t, installed + Duration::from_secs(600));
        assert_eq!(r.table_epoch, 2);
        let ids: Vec<(u32, &str)> = r.sas.iter().map(|s| (s.spi, s.dir.as_str())).collect();
        assert_eq!(ids, [(4097, "out"), (4098, "in")]);
        let out = &r.sas[0];
        assert_eq!(out.state, "soft-reached");
        assert_eq!(out.soft_reached, ["packets"]);
        assert!(out.hard_reached.is_empty());
        assert_eq!(
            (out.packets, out.bytes, out.seq, out.age_s),
            (150, 15_000, 150, 600)
        );
        assert_eq!(out.soft_left.packets, Some(0));
        assert_eq!(
            (
                out.hard_left.packets,
                out.hard_left.seconds,
                out.hard_left.bytes
            ),
            (Some(150), Some(3000), None)
        );
        // SA 4097 has no ESN: its sequence space is a limit too.
        assert!(!out.esn);
        assert_eq!(
            out.seq_left,
            Some(SeqLeft {
                soft: (1 << 32) - (1 << 28) - 150,
                hard: u64::from(u32::MAX) - 150
            })
        );
        let inb = &r.sas[1];
        assert_eq!(
            (inb.state.as_str(), inb.esn, inb.seq_left),
            ("active", true, None)
        );
        assert!(inb.lifetime.is_none());
        let text = serde_json::to_string(&r).expect("json");
        assert!(
            text.contains("\"hard_left\":{\"packets\":150,\"bytes\":null,\"seconds\":3000}"),
            "{text}"
        );
        for key in ["4c80cdefbb5d10da", "abbccddef0011223", "key"] {
            assert!(!text.contains(key), "{key} in {text}");
        }
        assert_eq!(parse_request(br#"{"cmd":"sa"}"#), Ok(Request::Sa));
    }

    #[test]
    fn the_tables_answer_names_ports_and_never_carries_a_key() {
        let hops = crate::chain::default_chain().expect("chain");
        let t = Tables::from_config(&hops[0].node, 3).expect("tables");
        let r = tables(&t);
        assert_eq!(r.table_epoch, 3);
        assert_eq!(
            r.fec[0],
            FecReply {
                prefix: "10.2.0.0/16".into(),
                label: Some(1002),
                port: "up0".into(),
                next_hop: "02:00:00:00:01:01".into(),
                spi: 4097
            }
        );
        assert_eq!(r.fec[1].prefix, "fd00:2::/32");
        assert_eq!(r.lfib.len(), 1);
        assert_eq!(
            (r.lfib[0].label, r.lfib[0].action.as_str()),
            (1001, "pop-local")
        );
        assert_eq!(r.lfib[0].port, None);
        assert_eq!(
            r.sa.iter()
                .map(|s| (s.spi, s.dir.as_str()))
                .collect::<Vec<_>>(),
            [(4097, "out"), (4098, "in")]
        );
        assert_eq!(r.sa[1].sources, ["10.2.0.0/16", "fd00:2::/32"]);
        assert_eq!(r.deliver.len(), 2);
        let text = serde_json::to_string(&r).expect("json");
        for key in ["4c80cdefbb5d10da", "abbccddef0011223", "key"] {
            assert!(!text.contains(key), "{key} in {text}");
        }
    }
}
