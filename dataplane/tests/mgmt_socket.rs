//! The management socket as an operator meets it: a server over a real
//! Unix socket in a temporary directory, fed by a table store and a stats
//! hub the test fills, asked by `meshplane ctl` (the binary) and by raw
//! clients that misbehave.

use meshplane::cli::ctl::query;
use meshplane::config::{Mode, NodeConfig};
use meshplane::control::mgmt::{
    MgmtCounters, MgmtError, MgmtNode, MgmtOptions, MgmtServer, OamHop, OamKind, OamRequest,
    OamResult, PortsReply, SaStatusReply, StatusReply, TablesReply,
};
use meshplane::drop_reason::DropReason;
use meshplane::runtime::{
    DeviceCounters, SlotWriter, StatsHub, TableStore, WorkerInfo, WorkerRole,
};
use meshplane::tables::Tables;
use meshplane::worker::WorkerStats;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

fn tmp_dir(tag: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("mgmt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir
}

/// Gateway A of the embedded chain.
fn gw_a() -> NodeConfig {
    meshplane::chain::default_chain().expect("chain")[0]
        .node
        .clone()
}

/// A hub with one worker on core 2 that received 10 frames (1000 bytes)
/// on lan0, sent 9 (1100 bytes) on up0 and dropped one for no route; the
/// devices counted 11 in and 9 out.
fn hub_for(cfg: &NodeConfig) -> Arc<StatsHub> {
    let names: Vec<String> = cfg.ports.iter().map(|p| p.name.clone()).collect();
    let hub = Arc::new(StatsHub::new(
        &cfg.name,
        Mode::RunToCompletion,
        names.clone(),
        vec![WorkerInfo {
            index: 0,
            core: Some(2),
            role: WorkerRole::RunToCompletion,
        }],
    ));
    let mut stats = WorkerStats::new(names.len());
    stats.ports[0].rx_packets = 10;
    stats.ports[0].rx_bytes = 1000;
    stats.ports[1].tx_packets = 9;
    stats.ports[1].tx_bytes = 1100;
    stats.drops.bump(DropReason::NoRoute);
    SlotWriter::new(hub.slot(0)).publish_final(&stats, 5);
    let dev = |rx, tx| DeviceCounters {
        rx_packets: rx,
        tx_packets: tx,
        ..DeviceCounters::default()
    };
    hub.set_devices(vec![dev(11, 0), dev(0, 9)], None);
    hub.set_table_epoch(5);
    hub
}

struct Node {
    server: MgmtServer,
    oam: Option<crossbeam::channel::Receiver<OamRequest>>,
    path: PathBuf,
    store: Arc<TableStore>,
}

fn start_with(cfg: &NodeConfig, opts: MgmtOptions) -> Node {
    let path = opts.path.clone();
    let store = Arc::new(TableStore::new(
        Tables::from_config(cfg, 5).expect("tables"),
    ));
    let node = MgmtNode {
        name: cfg.name.clone(),
        role: cfg.role,
        hub: hub_for(cfg),
        store: store.clone(),
        services: Some(Arc::new(
            meshplane::control::service_loop::ServiceStats::default(),
        )),
    };
    let (server, oam) = MgmtServer::start(opts, node).expect("start");
    Node {
        server,
        oam,
        path,
        store,
    }
}

fn start(dir: &Path) -> Node {
    start_with(&gw_a(), MgmtOptions::new(dir.join("gw-a.sock")))
}

fn ctl(path: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("ctl")
        .arg("--socket")
        .arg(path)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run meshplane ctl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs ctl; asserts it succeeded and returns its stdout.
fn ctl_ok(path: &Path, args: &[&str]) -> String {
    let o = ctl(path, args);
    assert_eq!(o.status.code(), Some(0), "ctl {args:?}: {}", stderr(&o));
    stdout(&o)
}

/// Runs ctl; asserts it failed with exit 1 and no panic, and returns stderr.
fn ctl_err(path: &Path, args: &[&str]) -> String {
    let o = ctl(path, args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "ctl {args:?}: {}{err}",
        stdout(&o)
    );
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn ask(path: &Path, req: Value) -> Value {
    query(path, &req, Duration::from_secs(10)).expect("an answer")
}

/// Reads one answer line from a raw client.
fn read_line(s: &mut UnixStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).expect("read");
    line
}

/// Whether the server closed `s` (EOF or reset) within 10 s.
fn closed(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn counters(n: &Node) -> MgmtCounters {
    n.server.counters()
}

#[test]
fn show_sa_says_which_sa_asks_for_a_rekey_and_which_expired() {
    let dir = tmp_dir("show-sa");
    let mut cfg = gw_a();
    cfg.sa[0].lifetime = meshplane::sa::Lifetime {
        soft: meshplane::sa::Limits {
            packets: Some(50),
            ..meshplane::sa::Limits::NONE
        },
        hard: meshplane::sa::Limits {
            packets: Some(100),
            ..meshplane::sa::Limits::NONE
        },
    };
    let n = start_with(&cfg, MgmtOptions::new(dir.join("gw-a.sock")));
    let t = n.store.load_full();
    let (out, inb) = (&t.sa_out[0], &t.sa_in[&4098].sa);
    let _ = out.reserve_seq(60);
    out.life.count(60, 6000);
    inb.life.count(7, 700);

    let r: SaStatusReply = serde_json::from_value(ask(&n.path, json!({"cmd": "sa"}))).expect("sa");
    assert_eq!(r.table_epoch, 5);
    let (a, b) = (&r.sas[0], &r.sas[1]);
    assert_eq!(
        (a.spi, a.dir.as_str(), a.state.as_str()),
        (4097, "out", "soft-reached")
    );
    assert_eq!((a.packets, a.bytes, a.seq), (60, 6000, 60));
    assert_eq!(
        (a.soft_left.packets, a.hard_left.packets),
        (Some(0), Some(40))
    );
    assert_eq!(
        (b.spi, b.dir.as_str(), b.state.as_str()),
        (4098, "in", "active")
    );
    assert_eq!((b.packets, b.bytes), (7, 700));

    let text = ctl_ok(&n.path, &["show", "sa"]);
    let a = row_of(&text, "4097");
    let cells = |idx: &[usize]| idx.iter().map(|&i| a[i].as_str()).collect::<Vec<_>>();
    assert_eq!(
        cells(&[0, 1, 2, 3, 4, 6, 7, 8, 9]),
        [
            "4097",
            "out",
            "192.0.2.1 -> 192.0.2.2",
            "no",
            "soft-reached",
            "60",
            "6000",
            "60",
            "reached (packets)"
        ],
        "{text}"
    );
    assert!(a[10].starts_with("40 pkts, "), "{text}");
    assert_eq!(row_of(&text, "4098")[4], "active", "{text}");
    assert!(
        text.contains("SA 4097 (out) asks for a rekey (packets)"),
        "{text}"
    );

    out.life.count(40, 4000);
    let text = ctl_ok(&n.path, &["show", "sa"]);
    assert_eq!(row_of(&text, "4097")[4], "expired", "{text}");
    assert!(
        text.contains("SA 4097 (out) expired (packets): its traffic is dropped"),
        "{text}"
    );
    let j = ctl_ok(&n.path, &["--json", "show", "sa"]);
    let v: Value = serde_json::from_str(j.trim()).expect("json");
    assert_eq!(v["sas"][0]["hard_reached"], json!(["packets"]));
    assert!(!j.contains("4c80cdef"), "a key in {j}");
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The cells of the row of `show sa` for SPI `spi`.
fn row_of(text: &str, spi: &str) -> Vec<String> {
    text.lines()
        .find(|l| l.trim_start().starts_with(spi))
        .map(|l| {
            l.split("  ")
                .filter(|w| !w.is_empty())
                .map(|w| w.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn show_commands_answer_what_the_store_and_the_hub_hold() {
    let dir = tmp_dir("show");
    let n = start(&dir);

    let s: StatusReply =
        serde_json::from_value(ask(&n.path, json!({"cmd": "status"}))).expect("status");
    assert_eq!((s.node.as_str(), s.role.as_str()), ("gw-a", "gateway"));
    assert_eq!(s.table_epoch, 5);
    assert_eq!(
        (s.rx_packets, s.rx_bytes, s.tx_packets, s.tx_bytes),
        (10, 1000, 9, 1100)
    );
    assert_eq!(s.drops_total, 1);
    assert_eq!(s.next_hops, ["up0"]);
    assert_eq!(
        (
            s.entries.fec,
            s.entries.lfib,
            s.entries.sa,
            s.entries.deliver
        ),
        (2, 1, 2, 2)
    );
    assert_eq!((s.workers.len(), s.workers[0].core), (1, Some(2)));
    assert_eq!(s.routes, None);
    let sv = s.services.expect("the service thread's counters");
    assert_eq!((sv.counters.received, sv.ignored.len()), (0, 0));

    let t: TablesReply =
        serde_json::from_value(ask(&n.path, json!({"cmd": "tables"}))).expect("tables");
    assert_eq!(t.table_epoch, 5);
    assert_eq!(t.fec.len(), 2);
    assert_eq!(
        (
            t.fec[0].prefix.as_str(),
            t.fec[0].label,
            t.fec[0].port.as_str()
        ),
        ("10.2.0.0/16", Some(1002), "up0")
    );
    assert_eq!(t.fec[0].next_hop, "02:00:00:00:01:01");
    assert_eq!(
        (t.lfib[0].label, t.lfib[0].action.as_str()),
        (1001, "pop-local")
    );
    assert_eq!(t.sa.len(), 2);
    assert_eq!(t.deliver[0].port, "lan0");

    let p: PortsReply =
        serde_json::from_value(ask(&n.path, json!({"cmd": "ports"}))).expect("ports");
    assert_eq!(p.ports.len(), 2);
    assert_eq!(
        (p.ports[0].name.as_str(), p.ports[0].mac.as_str()),
        ("lan0", "02:00:00:00:0a:01")
    );
    assert_eq!((p.ports[0].rx_packets, p.ports[1].tx_packets), (10, 9));
    assert_eq!(p.ports[0].device.map(|d| d.rx_packets), Some(11));

    let d = ask(&n.path, json!({"cmd": "drops"}));
    assert_eq!(
        d,
        json!({"drops": [{"reason": "no_route", "count": 1}], "total": 1})
    );

    // The same through the binary, as a person reads it.
    let text = ctl_ok(&n.path, &["show", "status"]);
    for want in [
        "node        gw-a (gateway, run-to-completion)",
        "tables      epoch 5, from the configuration file",
        "next hops   up0",
        "rx          10 packets, 1000 bytes",
        "tx          9 packets, 1100 bytes",
        "drops       1 (no_route 1)",
        "w0 (core 2, run-to-completion, epoch 5)",
    ] {
        assert!(text.contains(want), "no {want:?} in:\n{text}");
    }
    let text = ctl_ok(&n.path, &["show", "tables"]);
    assert!(text.contains("FEC (2)"), "{text}");
    let fec_line = text
        .lines()
        .find(|l| l.contains("10.2.0.0/16"))
        .unwrap_or_default();
    let words: Vec<&str> = fec_line.split_whitespace().collect();
    assert_eq!(
        words,
        ["10.2.0.0/16", "1002", "up0", "02:00:00:00:01:01", "4097"],
        "{text}"
    );
    assert!(text.contains("1001  pop-local"), "{text}");
    assert!(text.contains("192.0.2.2 -> 192.0.2.1"), "{text}");
    assert!(!text.contains("4c80cdef"), "a key in:\n{text}");
    // Columns line up: every row of the FEC table starts its label
    // column where the header does.
    let head = text
        .lines()
        .find(|l| l.contains("prefix") && l.contains("spi"))
        .unwrap_or_default();
    assert_eq!(head.find("port"), fec_line.find("up0"), "{text}");
    let text = ctl_ok(&n.path, &["show", "ports"]);
    let lan = text
        .lines()
        .find(|l| l.starts_with("lan0"))
        .unwrap_or_default();
    assert_eq!(
        lan.split_whitespace().collect::<Vec<_>>()[..8],
        [
            "lan0",
            "02:00:00:00:0a:01",
            "10",
            "1000",
            "0",
            "0",
            "11",
            "0"
        ],
        "{text}"
    );
    let text = ctl_ok(&n.path, &["show", "drops"]);
    assert!(
        text.contains("no_route      1") && text.contains("total         1"),
        "{text}"
    );

    // --json is the node's answer as sent.
    let text = ctl_ok(&n.path, &["--json", "show", "drops"]);
    assert_eq!(serde_json::from_str::<Value>(text.trim()).expect("json"), d);

    // Several requests on one connection, in order.
    let mut c = UnixStream::connect(&n.path).expect("connect");
    c.write_all(b"{\"cmd\":\"drops\"}\n{\"cmd\":\"status\"}\n")
        .expect("write");
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut r = BufReader::new(&c);
    let (mut a, mut b) = (String::new(), String::new());
    r.read_line(&mut a).expect("first");
    r.read_line(&mut b).expect("second");
    assert_eq!(serde_json::from_str::<Value>(&a).expect("json"), d);
    assert!(b.contains("\"node\":\"gw-a\""), "{b}");
    drop(r);
    drop(c);
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_socket_is_mode_0600_and_goes_away_with_the_server() {
    let dir = tmp_dir("mode");
    let n = start(&dir);
    let mode = std::fs::metadata(&n.path)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    let path = n.path.clone();
    n.server.stop();
    assert!(!path.exists(), "the socket outlived its server");
    let err = ctl_err(&path, &["show", "status"]);
    assert!(
        err.contains(&format!("no management socket at {}", path.display())),
        "{err}"
    );
    assert!(err.contains("is the node running?"), "{err}");
    // The default directory is made when missing.
    let deep = dir.join("a/b/n.sock");
    let n = start_with(&gw_a(), MgmtOptions::new(&deep));
    let mode = std::fs::metadata(dir.join("a/b"))
        .expect("dir")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "mode {mode:o}");
    assert!(ctl_ok(&deep, &["show", "status"]).contains("gw-a"));
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn garbage_gets_an_error_and_the_server_goes_on_serving_others() {
    let dir = tmp_dir("garbage");
    let n = start(&dir);
    for bad in [
        &b"hello\n"[..],
        b"{\"cmd\":\"reboot\"}\n",
        b"\xff\xfe\x00\n",
        b"[1,2]\n",
    ] {
        let mut c = UnixStream::connect(&n.path).expect("connect");
        c.write_all(bad).expect("write");
        let line = read_line(&mut c);
        let v: Value = serde_json::from_str(&line).expect("an error in JSON");
        let e = v["error"].as_str().unwrap_or_default();
        assert!(e.contains("{\"cmd\":\"status\"}"), "{line}");
        assert!(closed(&mut c), "the connection stays open after garbage");
    }
    // A client whose connection just drops, and one that sends half a
    // request and hangs up: neither holds anything.
    drop(UnixStream::connect(&n.path).expect("connect"));
    let mut c = UnixStream::connect(&n.path).expect("connect");
    c.write_all(b"{\"cmd\":\"sta").expect("write");
    drop(c);
    let s = ask(&n.path, json!({"cmd": "status"}));
    assert_eq!(s["node"], "gw-a");
    wait_for("five bad requests", || counters(&n).bad_requests == 5);
    // The node's error through ctl says what the node said.
    let mut c = UnixStream::connect(&n.path).expect("connect");
    c.write_all(b"{\"cmd\":\"lsp-ping\",\"to\":\"\"}\n")
        .expect("write");
    let v: Value = serde_json::from_str(&read_line(&mut c)).expect("json");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("name the egress gateway"),
        "{v}"
    );
    // An answered error is not a bad request: the connection stays.
    c.write_all(b"{\"cmd\":\"drops\"}\n").expect("write");
    assert!(read_line(&mut c).contains("no_route"));
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A node whose tables answer is far larger than a socket's buffer.
fn big_node() -> NodeConfig {
    let mut text = String::from(
        "[node]\nname = \"big\"\nrole = \"satellite\"\n[[ports]]\nname = \"p\"\nmac = \"02:00:00:00:00:01\"\n\
         [[ports]]\nname = \"q\"\nmac = \"02:00:00:00:00:02\"\n",
    );
    for label in 16..12_016 {
        text.push_str(&format!("[[lfib]]\nlabel = {label}\naction = \"pop\"\n"));
    }
    NodeConfig::parse(&text, "big.toml").expect("big config")
}

#[test]
fn a_client_that_never_reads_a_large_answer_does_not_hold_up_another() {
    let dir = tmp_dir("stuck");
    let mut opts = MgmtOptions::new(dir.join("big.sock"));
    opts.write_timeout = Duration::from_secs(3);
    let n = start_with(&big_node(), opts);
    let mut stuck = UnixStream::connect(&n.path).expect("connect");
    stuck.write_all(b"{\"cmd\":\"tables\"}\n").expect("write");
    // Its answer fills the socket; the server's writer waits on it.
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let s = ask(&n.path, json!({"cmd": "status"}));
    let waited = t0.elapsed();
    assert_eq!(s["node"], "big");
    assert!(
        waited < Duration::from_secs(2),
        "the second client waited {waited:?}"
    );
    assert_eq!(counters(&n).dropped, 0);
    // After the write timeout the stuck client is dropped.
    wait_for("the stuck client to be dropped", || {
        counters(&n).dropped == 1
    });
    // What the server had written is still there, then the end: never a
    // whole answer.
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut got = Vec::new();
    match stuck.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    assert!(
        !got.is_empty() && !got.ends_with(b"\n"),
        "{} bytes",
        got.len()
    );
    // A patient client gets the whole answer.
    let t = ask(&n.path, json!({"cmd": "tables"}));
    assert_eq!(t["lfib"].as_array().map(Vec::len), Some(12_000));
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_client_that_hangs_up_mid_answer_costs_the_server_nothing() {
    let dir = tmp_dir("hangup");
    let n = start_with(&big_node(), MgmtOptions::new(dir.join("big.sock")));
    for _ in 0..3 {
        let mut c = UnixStream::connect(&n.path).expect("connect");
        c.write_all(b"{\"cmd\":\"tables\"}\n").expect("write");
        let mut first = [0u8; 100];
        c.read_exact(&mut first).expect("the answer starts");
        assert_eq!(&first[..14], b"{\"table_epoch\"");
        drop(c);
    }
    wait_for("three dropped clients", || counters(&n).dropped == 3);
    assert_eq!(ask(&n.path, json!({"cmd": "status"}))["node"], "big");
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_over_long_line_is_refused_and_the_connection_closed() {
    let dir = tmp_dir("long");
    let n = start(&dir);
    let mut c = UnixStream::connect(&n.path).expect("connect");
    // Without an end of line: the server stops reading past the limit.
    c.write_all(&[b'a'; 5000]).expect("write");
    let line = read_line(&mut c);
    let v: Value = serde_json::from_str(&line).expect("json");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("longer than 4096 bytes"),
        "{line}"
    );
    assert!(closed(&mut c));
    // With one, just past the limit.
    let mut c = UnixStream::connect(&n.path).expect("connect");
    let mut long = br#"{"cmd":"status"}"#.to_vec();
    long.resize(4097, b' ');
    long.push(b'\n');
    c.write_all(&long).expect("write");
    assert!(read_line(&mut c).contains("longer than 4096"));
    // At the limit it is a request like any other.
    let mut c = UnixStream::connect(&n.path).expect("connect");
    long.truncate(4096);
    long.push(b'\n');
    c.write_all(&long).expect("write");
    assert!(read_line(&mut c).contains("\"node\":\"gw-a\""));
    assert_eq!(counters(&n).bad_requests, 2);
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn connections_beyond_the_bound_are_told_busy_and_the_rest_served() {
    let dir = tmp_dir("bound");
    let mut opts = MgmtOptions::new(dir.join("n.sock"));
    opts.max_connections = 2;
    let n = start_with(&gw_a(), opts);
    let idle: Vec<UnixStream> = (0..2)
        .map(|_| UnixStream::connect(&n.path).expect("connect"))
        .collect();
    wait_for("two connections served", || counters(&n).accepted == 2);
    let mut third = UnixStream::connect(&n.path).expect("connect");
    let line = read_line(&mut third);
    assert!(
        line.contains("\"error\":\"busy: 2 connections are open"),
        "{line}"
    );
    let err = ctl_err(&n.path, &["show", "status"]);
    assert!(err.contains("the node answered: busy"), "{err}");
    assert_eq!(counters(&n).refused_busy, 2);
    // An idle client going away frees its place.
    drop(idle);
    wait_for("a place to come free", || {
        query(&n.path, &json!({"cmd": "status"}), Duration::from_secs(5))
            .is_ok_and(|v| v["node"] == "gw-a")
    });
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let dir = tmp_dir("idle");
    let mut opts = MgmtOptions::new(dir.join("n.sock"));
    opts.idle_timeout = Duration::from_millis(300);
    let n = start_with(&gw_a(), opts);
    let mut c = UnixStream::connect(&n.path).expect("connect");
    let t0 = Instant::now();
    assert!(closed(&mut c));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

fn hop(ttl: u8, last: u8, node: &str, code: u8, meaning: &str) -> OamHop {
    OamHop {
        ttl,
        seq: None,
        bytes: None,
        address: Some(std::net::Ipv4Addr::new(100, 64, 1, last)),
        node: Some(node.into()),
        rtt_us: Some(1500.0 + f64::from(last)),
        return_code: Some(code),
        meaning: meaning.into(),
    }
}

#[test]
fn lsp_ping_and_trace_go_to_the_control_thread_and_its_answers_are_shown() {
    let dir = tmp_dir("oam");
    let mut opts = MgmtOptions::new(dir.join("n.sock"));
    opts.oam = true;
    let mut n = start_with(&gw_a(), opts);
    let rx = n.oam.take().expect("an OAM channel");
    // The control thread's stand-in: answers what it is asked.
    let responder = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(req) = rx.recv() {
            seen.push((
                req.kind,
                req.to.clone(),
                req.count,
                req.max_hops,
                req.timeout,
            ));
            let hops = match req.kind {
                OamKind::Ping => (0..req.count)
                    .map(|_| hop(255, 1, "gw1", 3, "replying router is an egress for the FEC"))
                    .collect(),
                OamKind::Trace => vec![
                    hop(1, 7, "sat7", 8, "label switched at stack depth 1"),
                    hop(2, 1, "gw1", 3, "replying router is an egress for the FEC"),
                ],
                OamKind::IcmpPing => unreachable!("no ping asked here"),
            };
            let _ = req.reply.send(OamResult {
                to: req.to,
                hops,
                error: None,
            });
        }
        seen
    });
    let text = ctl_ok(
        &n.path,
        &[
            "lsp-ping",
            "--to",
            "gs:1",
            "--count",
            "2",
            "--timeout-ms",
            "500",
        ],
    );
    assert!(text.starts_with("LSP ping to gs:1: 2 echoes"), "{text}");
    assert!(text.contains("100.64.1.1"), "{text}");
    assert!(text.contains("gw1") && text.contains("1.501"), "{text}");
    assert!(text.contains("2 sent, 2 answered, 0% lost"), "{text}");
    let text = ctl_ok(&n.path, &["lsp-trace", "--to", "gs:1", "--max-hops", "5"]);
    assert!(text.starts_with("LSP trace to gs:1, 5 hops max"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().take(5).collect())
        .collect();
    assert_eq!(
        rows,
        [
            ["1", "100.64.1.7", "sat7", "1.507", "8"],
            ["2", "100.64.1.1", "gw1", "1.501", "3"]
        ],
        "{text}"
    );
    let json_text = ctl_ok(&n.path, &["--json", "lsp-trace", "--to", "gs:1"]);
    let r: OamResult = serde_json::from_str(json_text.trim()).expect("an OAM result");
    assert_eq!(r.hops.len(), 2);
    drop(n);
    let seen = responder.join().expect("responder");
    assert_eq!(
        seen,
        [
            (
                OamKind::Ping,
                "gs:1".to_string(),
                2,
                255,
                Duration::from_millis(500)
            ),
            (
                OamKind::Trace,
                "gs:1".to_string(),
                1,
                5,
                Duration::from_millis(1000)
            ),
            (
                OamKind::Trace,
                "gs:1".to_string(),
                1,
                30,
                Duration::from_millis(1000)
            ),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// What the fake control thread saw of one ping request.
type SeenPing = (OamKind, String, u32, Duration, u16, Duration);

/// The control thread's stand-in for pings: echo `k` of a ping of
/// "lost" is never answered, of anything else every echo but the
/// second, from 100.64.0.6 (sat5), in 2.3 ms.
fn ping_responder(
    rx: crossbeam::channel::Receiver<OamRequest>,
) -> std::thread::JoinHandle<Vec<SeenPing>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(req) = rx.recv() {
            seen.push((
                req.kind,
                req.to.clone(),
                req.count,
                req.interval,
                req.size,
                req.timeout,
            ));
            let lost = req.to == "lost";
            let hops: Vec<OamHop> = (1..=req.count)
                .map(|seq| {
                    let answered = !lost && seq != 2;
                    OamHop {
                        ttl: 64,
                        seq: Some(seq),
                        bytes: answered.then_some(u32::from(req.size) + 8),
                        address: answered.then_some(std::net::Ipv4Addr::new(100, 64, 0, 6)),
                        node: answered.then(|| "sat5".to_string()),
                        rtt_us: answered.then_some(2300.0),
                        return_code: None,
                        meaning: if answered { "echo reply" } else { "no answer" }.into(),
                    }
                })
                .collect();
            let error = lost.then(|| format!("no echo to {} was answered", req.to));
            let _ = req.reply.send(OamResult {
                to: req.to,
                hops,
                error,
            });
        }
        seen
    })
}

#[test]
fn ping_goes_to_the_control_thread_and_prints_as_ping_does() {
    let dir = tmp_dir("ping");
    let mut opts = MgmtOptions::new(dir.join("n.sock"));
    opts.oam = true;
    let mut n = start_with(&gw_a(), opts);
    let responder = ping_responder(n.oam.take().expect("an OAM channel"));
    let args = [
        "ping",
        "--to",
        "sat:5",
        "--count",
        "3",
        "--interval-ms",
        "10",
        "--timeout-ms",
        "200",
        "--size",
        "100",
    ];
    let text = ctl_ok(&n.path, &args);
    assert_eq!(
        text,
        "PING sat:5: 100 data bytes\n\
         108 bytes from 100.64.0.6 (sat5): icmp_seq=1 time=2.30 ms\n\
         no answer for icmp_seq=2\n\
         108 bytes from 100.64.0.6 (sat5): icmp_seq=3 time=2.30 ms\n\
         \n\
         --- sat:5 ping statistics ---\n\
         3 packets transmitted, 2 received, 33% packet loss\n\
         rtt min/avg/max/mdev = 2.300/2.300/2.300/0.000 ms\n"
    );
    // --json: the node's answer as it is, with each echo's sequence number.
    let json_text = ctl_ok(&n.path, &[&["--json"][..], &args].concat());
    let r: OamResult = serde_json::from_str(json_text.trim()).expect("an OAM result");
    assert_eq!(
        r.hops.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [Some(1), Some(2), Some(3)]
    );
    assert!(json_text.contains("\"seq\":2") && json_text.contains("\"bytes\":108"));
    // Nothing came back: said, and exit 1, in text and in JSON.
    let o = ctl(&n.path, &["ping", "--to", "lost", "--interval-ms", "10"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("3 packets transmitted, 0 received, 100% packet loss"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("rtt min"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("no echo to lost was answered"),
        "{}",
        stderr(&o)
    );
    let err = ctl_err(&n.path, &["--json", "ping", "--to", "lost", "--count", "1"]);
    assert!(err.contains("no echo to lost was answered"), "{err}");
    // Defaults: as ping's, 3 echoes.
    ctl_ok(&n.path, &["ping", "--to", "gw-b"]);
    // Out of bounds: refused by ctl before asking, and by the node for
    // any other client.
    for (flag, value) in [
        ("--interval-ms", "9"),
        ("--size", "1401"),
        ("--count", "0"),
        ("--count", "101"),
        ("--timeout-ms", "0"),
    ] {
        let o = ctl(&n.path, &["ping", "--to", "x", flag, value]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}");
        assert!(stderr(&o).contains(flag), "{}", stderr(&o));
    }
    for (req, want) in [
        (
            json!({"cmd": "ping", "to": "x", "interval_ms": 9}),
            "interval_ms 9: want 10 to 10000",
        ),
        (
            json!({"cmd": "ping", "to": "x", "size": 1401}),
            "size 1401: want 0 to 1400",
        ),
        (json!({"cmd": "ping", "to": ""}), "name the node to ping"),
    ] {
        let a = ask(&n.path, req);
        let e = a["error"].as_str().expect("an error");
        assert!(e.contains(want), "{e}");
    }
    drop(n);
    let seen = responder.join().expect("responder");
    let ms = Duration::from_millis;
    assert_eq!(
        seen,
        [
            (OamKind::IcmpPing, "sat:5".into(), 3, ms(10), 100, ms(200)),
            (OamKind::IcmpPing, "sat:5".into(), 3, ms(10), 100, ms(200)),
            (OamKind::IcmpPing, "lost".into(), 3, ms(10), 56, ms(1000)),
            (OamKind::IcmpPing, "lost".into(), 1, ms(1000), 56, ms(1000)),
            (OamKind::IcmpPing, "gw-b".into(), 3, ms(1000), 56, ms(1000)),
        ]
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn oam_without_a_responder_is_answered_not_waited_for_forever() {
    let dir = tmp_dir("no-oam");
    // A static node: no control thread at all.
    let n = start(&dir);
    let err = ctl_err(&n.path, &["lsp-ping", "--to", "gs:1"]);
    assert!(err.contains("runs no control thread"), "{err}");
    drop(n);
    // A control thread that does not take requests: they time out after
    // their budget and the margin.
    let mut opts = MgmtOptions::new(dir.join("slow.sock"));
    opts.oam = true;
    let n = start_with(&gw_a(), opts);
    let t0 = Instant::now();
    let err = ctl_err(
        &n.path,
        &[
            "lsp-ping",
            "--to",
            "gs:1",
            "--count",
            "1",
            "--timeout-ms",
            "10",
        ],
    );
    assert!(
        err.contains("no answer from the control thread within 1010 ms"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    // The queue is bounded: requests beyond it are told busy at once.
    let rx = n.oam.as_ref().expect("channel");
    wait_for("the first request to be queued", || rx.len() == 1);
    for _ in 0..3 {
        let _ = ctl(
            &n.path,
            &[
                "--json",
                "lsp-ping",
                "--to",
                "gs:1",
                "--count",
                "1",
                "--timeout-ms",
                "10",
            ],
        );
    }
    let err = ctl_err(&n.path, &["lsp-ping", "--to", "gs:1", "--timeout-ms", "10"]);
    assert!(
        err.contains("busy: 4 ping/lsp-ping/lsp-trace requests are already waiting"),
        "{err}"
    );
    // Once the control thread's end is gone, the answer comes at once.
    let Node {
        server, oam, path, ..
    } = n;
    drop(oam);
    let t0 = Instant::now();
    let err = ctl_err(&path, &["lsp-trace", "--to", "gs:1"]);
    assert!(err.contains("no OAM responder"), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_server_on_a_live_path_fails_and_a_stale_socket_is_replaced() {
    let dir = tmp_dir("twice");
    let n = start(&dir);
    let cfg = gw_a();
    let store = Arc::new(TableStore::new(
        Tables::from_config(&cfg, 1).expect("tables"),
    ));
    let node = MgmtNode {
        name: cfg.name.clone(),
        role: cfg.role,
        hub: hub_for(&cfg),
        store,
        services: None,
    };
    let e = MgmtServer::start(MgmtOptions::new(&n.path), node.clone()).expect_err("in use");
    assert!(matches!(e, MgmtError::InUse(_)), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&n.path.display().to_string()), "{msg}");
    assert!(msg.contains("another process is listening there"), "{msg}");
    // The first still serves, and its file is still its own.
    assert_eq!(ask(&n.path, json!({"cmd": "status"}))["node"], "gw-a");
    drop(n);

    // A socket nobody listens on (its node was killed) is replaced.
    let stale = dir.join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let err = ctl_err(&stale, &["show", "status"]);
    assert!(err.contains("nothing listens on"), "{err}");
    let (server, _) = MgmtServer::start(MgmtOptions::new(&stale), node.clone()).expect("replaced");
    assert_eq!(ask(&stale, json!({"cmd": "status"}))["node"], "gw-a");
    drop(server);
    assert!(!stale.exists());

    // A file that is no socket is left alone.
    let file = dir.join("file.sock");
    std::fs::write(&file, "keep me").expect("write");
    let e = MgmtServer::start(MgmtOptions::new(&file), node).expect_err("not a socket");
    assert!(matches!(e, MgmtError::NotASocket(_)), "{e}");
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "keep me");
    let err = ctl_err(&file, &["show", "status"]);
    assert!(err.contains("is not a socket"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn another_user_is_refused_by_the_mode_and_by_the_peer_check() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: running another uid's client needs root");
        return;
    }
    use std::os::unix::process::CommandExt;
    let dir = tmp_dir("uid");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let n = start(&dir);
    let as_nobody = || {
        Command::new(BIN)
            .args(["ctl", "--socket"])
            .arg(&n.path)
            .args(["show", "status"])
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .expect("run ctl as nobody")
    };
    // Mode 0600: the kernel refuses the connection.
    let o = as_nobody();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("permission denied on"),
        "{}",
        stderr(&o)
    );
    assert_eq!(counters(&n).refused_peer, 0);
    // Opened up by mistake: the server refuses the peer itself.
    std::fs::set_permissions(&n.path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = as_nobody();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the node answered: permission denied: uid 65534 may not use"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    assert_eq!(counters(&n).refused_peer, 1);
    assert_eq!(counters(&n).accepted, 0);
    drop(n);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ctl_finds_the_node_by_name_and_says_what_to_do_when_it_cannot() {
    let o = Command::new(BIN)
        .args(["ctl", "--node", "no-such-node-here", "show", "status"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("no management socket at /run/meshplane/no-such-node-here.sock"),
        "{err}"
    );
    let o = Command::new(BIN)
        .args(["ctl", "--node", "a/b", "show", "status"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("--node \"a/b\": want a node name"),
        "{}",
        stderr(&o)
    );
    // Both ways of naming the socket at once is a usage error.
    let o = Command::new(BIN)
        .args([
            "ctl",
            "--node",
            "x",
            "--socket",
            "/tmp/x.sock",
            "show",
            "status",
        ])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = Command::new(BIN)
        .args(["ctl", "show", "everything"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("status"), "{}", stderr(&o));
}

#[test]
fn run_socket_flags_are_checked_before_anything_starts() {
    let dir = tmp_dir("run-flags");
    let cfg = dir.join("n.toml");
    std::fs::write(&cfg, "[node]\nname = \"n\"\nrole = \"satellite\"\n").expect("write");
    let long = format!("/tmp/{}.sock", "s".repeat(120));
    let o = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--socket", &long])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("at most 107"), "{}", stderr(&o));
    let o = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--socket", "/tmp/x.sock", "--no-socket"])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
