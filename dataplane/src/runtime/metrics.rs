//! The Prometheus endpoint of `--metrics ADDR`: a tiny HTTP/1.0 server on
//! std::net that answers `GET /metrics` with the text exposition format
//! (counters labelled by worker, port and drop reason; latency quantiles as
//! a summary). It reads the stats hub only, never a worker.
//!
//! It binds loopback addresses only unless told otherwise: the counters
//! reveal traffic volumes and the server has no authentication.

use super::hub::StatsHub;
use super::snapshot::{NodeSnapshot, QUANTILES};
use crate::drop_reason::DropReason;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The metrics server could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address is not a loopback address and public binding was not asked for.
    #[error(
        "--metrics {0}: not a loopback address; the endpoint has no authentication \
         (use 127.0.0.1:PORT or [::1]:PORT, or allow it explicitly)"
    )]
    NotLoopback(SocketAddr),
    /// Binding failed.
    #[error("--metrics {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

/// A running metrics server; stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetricsServer {
    /// Serves `hub` on `addr` (port 0 picks a free one). Refuses a
    /// non-loopback address unless `allow_public`, and then warns.
    pub fn start(
        addr: SocketAddr,
        allow_public: bool,
        hub: Arc<StatsHub>,
    ) -> Result<Self, MetricsError> {
        if !addr.ip().is_loopback() {
            if !allow_public {
                return Err(MetricsError::NotLoopback(addr));
            }
            tracing::warn!(%addr, "metrics endpoint on a non-loopback address, without authentication");
        }
        let listener = TcpListener::bind(addr).map_err(|e| MetricsError::Bind(addr, e))?;
        let local = listener
            .local_addr()
            .map_err(|e| MetricsError::Bind(addr, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| MetricsError::Bind(addr, e))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || serve(listener, &hub, &stop2))
            .map_err(|e| MetricsError::Bind(addr, e))?;
        tracing::info!(addr = %local, "serving Prometheus metrics at /metrics");
        Ok(MetricsServer {
            addr: local,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Most connections served at once. Each one holds a thread for at most
/// [`REQUEST_DEADLINE`] plus the write deadline; a connection beyond the
/// bound is answered `503` and closed at once rather than queued.
pub const MAX_CONNECTIONS: usize = 32;

/// How long writing a response may take.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(2);

/// Counts a connection being served; the count drops when it ends.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot if fewer than [`MAX_CONNECTIONS`] are taken.
    fn take(active: &Arc<AtomicUsize>) -> Option<Slot> {
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CONNECTIONS).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(Arc::clone(active)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Accepts connections and serves each on a thread of its own, at most
/// [`MAX_CONNECTIONS`] at once: a client that connects and sends nothing
/// holds only its own thread, never the next scraper.
fn serve(listener: TcpListener, hub: &Arc<StatsHub>, stop: &AtomicBool) {
    let active = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let Some(slot) = Slot::take(&active) else {
                    tracing::debug!(%peer, "metrics: {MAX_CONNECTIONS} connections open; refusing one");
                    refuse_busy(stream);
                    continue;
                };
                let hub = Arc::clone(hub);
                let spawned = std::thread::Builder::new()
                    .name("metrics-conn".into())
                    .spawn(move || {
                        let _slot = slot;
                        if let Err(e) = answer(stream, &hub) {
                            tracing::debug!("metrics request: {e}");
                        }
                    });
                if let Err(e) = spawned {
                    tracing::warn!("metrics: cannot start a connection thread: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                tracing::warn!("metrics accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Answers `503` without reading the request, never blocking the accept
/// loop (the response fits the socket buffer of a fresh connection).
fn refuse_busy(mut stream: TcpStream) {
    let body = "too many connections\n";
    let _ = stream.set_nonblocking(true);
    let _ = write!(
        stream,
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// Most bytes of request line and headers the server reads.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// How long a client has to send its whole request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Why a request head could not be read.
enum HeadError {
    /// Longer than `MAX_REQUEST_BYTES`.
    TooLarge,
    /// The connection failed or the deadline passed.
    Io(std::io::Error),
}

/// Reads the request head (up to the blank line) within
/// [`REQUEST_DEADLINE`] and [`MAX_REQUEST_BYTES`]; returns its first line.
/// A client that sends slowly or without end holds its own connection
/// thread for at most the deadline.
fn read_request_line(stream: &mut TcpStream) -> Result<String, HeadError> {
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            break;
        }
        if head.len() >= MAX_REQUEST_BYTES {
            return Err(HeadError::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Io(std::io::ErrorKind::TimedOut.into()));
        }
        stream.set_read_timeout(Some(left)).map_err(HeadError::Io)?;
        let want = chunk.len().min(MAX_REQUEST_BYTES - head.len());
        match stream.read(&mut chunk[..want]) {
            // The client closed its side: take what came.
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(HeadError::Io(e)),
        }
    }
    let text = String::from_utf8_lossy(&head);
    Ok(text.lines().next().unwrap_or("").to_string())
}

/// Where the head ends (the blank line), if it has.
fn head_end(buf: &[u8]) -> Option<usize> {
    let crlf = buf.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = buf.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn answer(mut stream: TcpStream, hub: &StatsHub) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_DEADLINE))?;
    let request = match read_request_line(&mut stream) {
        Ok(r) => r,
        Err(HeadError::TooLarge) => {
            let body = "request head too large\n";
            write!(
                stream,
                "HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return stream.flush();
        }
        Err(HeadError::Io(e)) => return Err(e),
    };
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, ctype, body) = match (method, path) {
        ("GET", "/metrics") => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            render(&hub.snapshot()),
        ),
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "GET only\n".into()),
    };
    let mut w = stream;
    write!(
        w,
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    w.flush()
}

fn label_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The snapshot in the Prometheus text exposition format.
pub fn render(snap: &NodeSnapshot) -> String {
    let mut s = String::new();
    let node = label_escape(&snap.node);
    let family = |s: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type PortField = fn(&crate::worker::PortCounters) -> u64;
    let port_counters: [(&str, &str, PortField); 6] = [
        (
            "meshplane_rx_packets_total",
            "Frames received by a worker on a port.",
            |p| p.rx_packets,
        ),
        (
            "meshplane_rx_bytes_total",
            "Bytes received by a worker on a port.",
            |p| p.rx_bytes,
        ),
        (
            "meshplane_tx_packets_total",
            "Frames sent by a worker on a port.",
            |p| p.tx_packets,
        ),
        (
            "meshplane_tx_bytes_total",
            "Bytes sent by a worker on a port.",
            |p| p.tx_bytes,
        ),
        (
            "meshplane_punt_packets_total",
            "Frames for the node itself a worker handed to the control thread.",
            |p| p.punt_packets,
        ),
        (
            "meshplane_inject_packets_total",
            "Frames of the control thread a worker sent on a port.",
            |p| p.inject_packets,
        ),
    ];
    for (name, help, get) in port_counters {
        family(&mut s, name, "counter", help);
        for w in &snap.workers {
            for (i, p) in w.stats.ports.iter().enumerate() {
                let port = label_escape(snap.port_names.get(i).map_or("?", String::as_str));
                let _ = writeln!(
                    s,
                    "{name}{{node=\"{node}\",worker=\"{}\",port=\"{port}\"}} {}",
                    w.info.index,
                    get(p)
                );
            }
        }
    }
    family(
        &mut s,
        "meshplane_drops_total",
        "counter",
        "Frames dropped, by worker and reason.",
    );
    for w in &snap.workers {
        for r in DropReason::ALL {
            let _ = writeln!(
                s,
                "meshplane_drops_total{{node=\"{node}\",worker=\"{}\",reason=\"{}\"}} {}",
                w.info.index,
                r.name(),
                w.stats.drops.get(r)
            );
        }
    }
    type DevField = fn(&super::backend::DeviceCounters) -> u64;
    let dev: [(&str, &str, DevField); 4] = [
        (
            "meshplane_device_rx_missed_total",
            "Frames the device dropped for a full RX queue.",
            |d| d.rx_missed,
        ),
        (
            "meshplane_device_rx_errors_total",
            "Erroneous frames the device received.",
            |d| d.rx_errors,
        ),
        (
            "meshplane_device_rx_nombuf_total",
            "RX failures for lack of buffers.",
            |d| d.rx_nombuf,
        ),
        (
            "meshplane_device_tx_errors_total",
            "Failed transmissions.",
            |d| d.tx_errors,
        ),
    ];
    if !snap.devices.is_empty() {
        for (name, help, get) in dev {
            family(&mut s, name, "counter", help);
            for (i, d) in snap.devices.iter().enumerate() {
                let port = label_escape(snap.port_names.get(i).map_or("?", String::as_str));
                let _ = writeln!(s, "{name}{{node=\"{node}\",port=\"{port}\"}} {}", get(d));
            }
        }
    }
    family(
        &mut s,
        "meshplane_latency_seconds",
        "summary",
        "RX-to-TX latency per frame, since start.",
    );
    for w in &snap.workers {
        let h = &w.stats.latency;
        for (q, _) in QUANTILES.iter().chain([(1.0, "max")].iter()) {
            let v = if h.is_empty() {
                0
            } else {
                h.value_at_quantile(*q)
            };
            let _ = writeln!(
                s,
                "meshplane_latency_seconds{{node=\"{node}\",worker=\"{}\",quantile=\"{q}\"}} {:e}",
                w.info.index,
                v as f64 / 1e9
            );
        }
        let _ = writeln!(
            s,
            "meshplane_latency_seconds_count{{node=\"{node}\",worker=\"{}\"}} {}",
            w.info.index,
            h.len()
        );
        let sum = h.mean() * h.len() as f64 / 1e9;
        let _ = writeln!(
            s,
            "meshplane_latency_seconds_sum{{node=\"{node}\",worker=\"{}\"}} {sum:e}",
            w.info.index
        );
    }
    family(
        &mut s,
        "meshplane_table_epoch",
        "gauge",
        "Epoch of the installed forwarding tables.",
    );
    let _ = writeln!(
        s,
        "meshplane_table_epoch{{node=\"{node}\"}} {}",
        snap.table_epoch
    );
    if let Some(b) = snap.buffers {
        family(
            &mut s,
            "meshplane_buffers_free",
            "gauge",
            "Free buffers in the pool.",
        );
        let _ = writeln!(
            s,
            "meshplane_buffers_free{{node=\"{node}\"}} {}",
            b.available
        );
        family(
            &mut s,
            "meshplane_buffers_size",
            "gauge",
            "Buffers in the pool.",
        );
        let _ = writeln!(s, "meshplane_buffers_size{{node=\"{node}\"}} {}", b.size);
    }
    s
}
