//! The Prometheus endpoint, read over a real TCP connection the way a
//! scraper reads it, while a node (memory backend) forwards traffic.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use meshplane::chain::default_chain;
use meshplane::config::{Idle, Mode};
use meshplane::frame::HeapFrame;
use meshplane::runtime::metrics::MetricsError;
use meshplane::runtime::{
    run, Layout, MemoryBackend, MetricsServer, RunOptions, StatsHub, TableStore, PUBLISH_EVERY,
};
use meshplane::tables::Tables;

fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("response");
    let (head, body) = resp.split_once("\r\n\r\n").expect("headers end");
    (head.to_string(), body.to_string())
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
        .parse()
        .expect("a number")
}

#[test]
fn metrics_endpoint_serves_the_counters_a_scraper_expects() {
    let hops = default_chain().expect("chain");
    let cfg = &hops[1].node; // sat-1
    let layout = Layout::new(&[], Mode::RunToCompletion).expect("layout");
    let mut backend = MemoryBackend::new(cfg.ports.len(), 1, 1024);
    let (rx, tx) = (backend.rx_ring(0, 0), backend.tx_ring(1, 0));
    let store = Arc::new(TableStore::new(
        Tables::from_config(cfg, 1).expect("tables"),
    ));
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = Arc::new(StatsHub::new(
        &cfg.name,
        Mode::RunToCompletion,
        names,
        layout.threads().to_vec(),
    ));
    // Loopback only unless asked.
    let public = MetricsServer::start("0.0.0.0:0".parse().expect("addr"), false, hub.clone());
    assert!(matches!(public, Err(MetricsError::NotLoopback(_))));
    let server = MetricsServer::start("127.0.0.1:0".parse().expect("addr"), false, hub.clone())
        .expect("bind");

    let stop = Arc::new(AtomicBool::new(false));
    let (s, st, h) = (stop.clone(), store.clone(), hub.clone());
    let node = thread::spawn(move || {
        let opts = RunOptions {
            idle: Idle::Adaptive,
            ..RunOptions::default()
        };
        run(&mut backend, &layout, &st, &h, &s, &opts, |_| {}).expect("run")
    });
    // 500 frames label 1002 (forwarded to gsl-b) and 20 with label 77 (no route).
    let frame = |label: u32| {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0x0a, 2]);
        f[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
        f[14..18].copy_from_slice(&((label << 12) | (1 << 8) | 64).to_be_bytes());
        HeapFrame::from_bytes(&f)
    };
    for i in 0..520 {
        let mut f = frame(if i < 500 { 1002 } else { 77 });
        while let Err(back) = rx.push(f) {
            f = back;
            while tx.pop().is_some() {}
            thread::yield_now();
        }
    }
    store.publish(Tables::from_config(cfg, 0).expect("tables"));
    // Wait until the worker has published what it did.
    let deadline = Instant::now() + Duration::from_secs(10);
    let body = loop {
        let (head, body) = get(server.addr(), "/metrics");
        assert!(head.starts_with("HTTP/1.0 200"), "{head}");
        assert!(head.contains("text/plain; version=0.0.4"), "{head}");
        if body.contains("worker=\"0\",port=\"gsl-a\"} 520") || Instant::now() > deadline {
            break body;
        }
        thread::sleep(PUBLISH_EVERY / 2);
    };
    let l = "node=\"sat-1\",worker=\"0\"";
    assert_eq!(
        sample(
            &body,
            &format!("meshplane_rx_packets_total{{{l},port=\"gsl-a\"}}")
        ),
        520.0
    );
    assert_eq!(
        sample(
            &body,
            &format!("meshplane_tx_packets_total{{{l},port=\"gsl-b\"}}")
        ),
        500.0
    );
    assert_eq!(
        sample(
            &body,
            &format!("meshplane_tx_packets_total{{{l},port=\"gsl-a\"}}")
        ),
        0.0
    );
    assert_eq!(
        sample(
            &body,
            &format!("meshplane_drops_total{{{l},reason=\"no_route\"}}")
        ),
        20.0
    );
    assert_eq!(
        sample(
            &body,
            &format!("meshplane_drops_total{{{l},reason=\"malformed\"}}")
        ),
        0.0
    );
    assert_eq!(
        sample(&body, &format!("meshplane_latency_seconds_count{{{l}}}")),
        500.0
    );
    let p99 = sample(
        &body,
        &format!("meshplane_latency_seconds{{{l},quantile=\"0.99\"}}"),
    );
    assert!(p99 > 0.0 && p99 < 10.0, "p99 {p99}");
    assert!(body.contains("# TYPE meshplane_drops_total counter"));
    assert!(body.contains("# TYPE meshplane_latency_seconds summary"));
    // The supervisor refreshes the epoch on its tick.
    let deadline = Instant::now() + Duration::from_secs(5);
    while sample(
        &get(server.addr(), "/metrics").1,
        "meshplane_table_epoch{node=\"sat-1\"}",
    ) != 2.0
    {
        assert!(Instant::now() < deadline, "table epoch never reached 2");
        thread::sleep(Duration::from_millis(20));
    }
    let (head, _) = get(server.addr(), "/other");
    assert!(head.starts_with("HTTP/1.0 404"), "{head}");

    stop.store(true, Ordering::Relaxed);
    node.join().expect("node");
}

#[test]
fn endless_or_stalled_requests_do_not_hold_the_metrics_server() {
    let hops = default_chain().expect("chain");
    let cfg = &hops[1].node;
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let layout = Layout::new(&[], Mode::RunToCompletion).expect("layout");
    let hub = Arc::new(StatsHub::new(
        &cfg.name,
        Mode::RunToCompletion,
        names,
        layout.threads().to_vec(),
    ));
    let server =
        MetricsServer::start("127.0.0.1:0".parse().expect("addr"), false, hub).expect("bind");

    // A request line that does not end: refused once the head limit is
    // reached, while the client is still connected (and would send more).
    let mut endless = TcpStream::connect(server.addr()).expect("connect");
    let junk = vec![b'a'; meshplane::runtime::metrics::MAX_REQUEST_BYTES];
    endless.write_all(&junk).expect("send");
    endless
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut resp = Vec::new();
    let _ = endless.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.0 431"), "{resp:?}");

    // A client that sends half a request and stalls is cut off, and the
    // next scraper is served.
    let mut stalled = TcpStream::connect(server.addr()).expect("connect");
    write!(stalled, "GET /metr").expect("partial request");
    let (head, body) = get(server.addr(), "/metrics");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    assert!(body.contains("meshplane_rx_packets_total"), "{body}");
    drop(stalled);
}

/// `GET /metrics` with a deadline; the head line and the time it took.
fn timed_get(addr: std::net::SocketAddr) -> (String, Duration) {
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").expect("request");
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    (resp.lines().next().unwrap_or("").to_string(), t.elapsed())
}

#[test]
fn idle_connections_do_not_delay_a_scrape_and_the_bound_refuses_the_rest() {
    use meshplane::runtime::metrics::{MAX_CONNECTIONS, MAX_REQUEST_BYTES};
    let hops = default_chain().expect("chain");
    let cfg = &hops[1].node;
    let names = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let layout = Layout::new(&[], Mode::RunToCompletion).expect("layout");
    let hub = Arc::new(StatsHub::new(
        &cfg.name,
        Mode::RunToCompletion,
        names,
        layout.threads().to_vec(),
    ));
    let server =
        MetricsServer::start("127.0.0.1:0".parse().expect("addr"), false, hub).expect("bind");
    let addr = server.addr();

    // Sixteen clients connect and send nothing: a scrape is still answered
    // at once, not after their deadlines one by one.
    let mut idle: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    thread::sleep(Duration::from_millis(200));
    let (head, took) = timed_get(addr);
    assert!(head.starts_with("HTTP/1.0 200"), "{head:?} after {took:?}");
    assert!(took < Duration::from_millis(500), "scrape took {took:?}");

    // Up to the bound they are all held; the next connection is refused
    // at once instead of waiting in a queue.
    thread::sleep(Duration::from_millis(100));
    while idle.len() < MAX_CONNECTIONS {
        idle.push(TcpStream::connect(addr).expect("connect"));
    }
    thread::sleep(Duration::from_millis(200));
    let (head, took) = timed_get(addr);
    assert!(head.starts_with("HTTP/1.0 503"), "{head:?} after {took:?}");
    assert!(took < Duration::from_millis(500), "refusal took {took:?}");

    // Once the idle clients go, scrapes are served again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (head, _) = timed_get(addr);
        if head.starts_with("HTTP/1.0 200") {
            break;
        }
        assert!(Instant::now() < deadline, "never served again: {head:?}");
        thread::sleep(Duration::from_millis(50));
    }

    // A request line followed by an oversized header: 431.
    let mut big = TcpStream::connect(addr).expect("connect");
    big.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let header = format!(
        "GET /metrics HTTP/1.1\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(MAX_REQUEST_BYTES)
    );
    let _ = big.write_all(header.as_bytes());
    let mut resp = Vec::new();
    let _ = big.read_to_end(&mut resp);
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.0 431"), "{resp:?}");
}
