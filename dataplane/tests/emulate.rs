//! `meshplane emulate` at a small scale: what a user checks first.
//!
//! * Unloaded links lose nothing, and every ping's RTT is that of the
//!   shortest path `meshplane routes` computes for the instant it was sent
//!   (within 0.1 ms), whichever path change falls in between.
//! * A flow pushed past a link's capacity queues and loses frames at the
//!   tail of that link, and a flow that does not cross it sees neither.
//! * Every frame lost has a node and a reason.

use meshplane::emulate::traffic::{FlowKind, FlowSpec};
use meshplane::emulate::{self, report::Report, Options};
use meshplane::gen::FrameSize;
use meshplane_control::{Constellation, Engine, Failures, GroundStations, Preset};

fn gids(names: &[&str]) -> (GroundStations, Vec<u32>) {
    let st = GroundStations::top100();
    let mut g: Vec<u32> = names.iter().map(|n| st.find(n).expect("station")).collect();
    g.sort_unstable();
    (st, g)
}

/// Index of station `name` among the emulated gateways.
fn index(st: &GroundStations, gateways: &[u32], name: &str) -> u32 {
    let gid = st.find(name).expect("station");
    gateways.iter().position(|&g| g == gid).expect("emulated") as u32
}

fn assert_every_loss_has_a_node_and_reason(r: &Report) {
    let dropped: u64 = r.drops.iter().map(|d| d.count).sum();
    assert_eq!(
        r.totals.lost, dropped,
        "every frame lost is a drop with a node and a reason: {:?}",
        r.drops
    );
    for f in &r.flows {
        assert_eq!(f.lost, f.dropped, "{} -> {}", f.src, f.dst);
    }
}

#[test]
fn unloaded_pings_lose_nothing_and_measure_the_routes_rtt() {
    let names = ["London", "New-York-Newark", "Tokyo", "3"];
    let (st, gateways) = gids(&names);
    let at_s = 30.0;
    let mut o = Options::new(Preset::Starlink550, st.clone(), gateways.clone());
    o.at_s = at_s;
    o.duration_s = 2.0;
    o.drain_s = 0.5;
    o.record_pings = true;
    o.flows = emulate::flows_for(
        &emulate::pairs(gateways.len() as u32, None),
        10.0,
        FrameSize::Imix,
        FlowKind::Ping,
    );
    let r = emulate::run(&o).expect("run");
    assert_eq!(r.flows.len(), 6);
    assert_eq!(r.totals.sent, 6 * 20);
    assert_eq!(r.totals.lost, 0, "drops: {:?}", r.drops);
    assert!(r.drops.is_empty(), "{:?}", r.drops);
    assert_eq!(r.pings.len() as u64, r.totals.replies);
    assert!(r.totals.epochs >= 25, "a table epoch every 100 ms");
    assert_every_loss_has_a_node_and_reason(&r);

    // The RTT `meshplane routes` gives for each ping's send time.
    let mut engine = Engine::new(Constellation::preset(Preset::Starlink550), st).expect("engine");
    let n_sats = engine.constellation().len() as u32;
    let none = Failures::new();
    let mut worst: f64 = 0.0;
    for &(flow, sent_ns, rtt_ns) in &r.pings {
        let f = &o.flows[flow as usize];
        let (src, dst) = (gateways[f.src as usize], gateways[f.dst as usize]);
        let topo = engine
            .topology(at_s + sent_ns as f64 / 1e9, &none)
            .expect("topology");
        let want = engine
            .tree(&topo, dst)
            .path_from(n_sats + src)
            .expect("a path")
            .rtt_ms();
        let got = rtt_ns as f64 / 1e6;
        assert!(
            (got - want).abs() < 0.1,
            "flow {flow} sent at {sent_ns} ns: RTT {got} ms, routes say {want} ms"
        );
        worst = worst.max((got - want).abs());
    }
    eprintln!("largest RTT difference from routes: {worst:.6} ms");
    for f in &r.flows {
        let rtt = f.rtt_ms.expect("RTTs");
        assert!(rtt.min > 5.0 && rtt.max < 400.0, "{f:?}");
        assert!(f.rtt_vs_routes_max_ms.expect("compared") < 0.1, "{f:?}");
        assert!(f.hops >= 3, "gateway, a satellite at least, gateway");
    }

    // The JSON names what the README documents.
    let v = serde_json::to_value(&r).expect("json");
    let f = &v["flows"][0];
    for key in [
        "src_gid",
        "dst_gid",
        "sent",
        "received",
        "lost",
        "reordered",
        "path_changes",
    ] {
        assert!(f[key].is_u64(), "{key}: {f}");
    }
    for key in ["one_way_ms", "rtt_ms"] {
        for q in ["min", "p50", "p99", "max"] {
            assert!(f[key][q].is_f64(), "{key}.{q}: {f}");
        }
    }
}

#[test]
fn a_flow_past_a_links_capacity_queues_and_drops_there_and_no_other_flow_suffers() {
    let names = ["London", "New-York-Newark", "Tokyo", "Sydney"];
    let (st, gateways) = gids(&names);
    let i = |n: &str| index(&st, &gateways, n);
    let mut o = Options::new(Preset::Starlink550, st.clone(), gateways.clone());
    o.at_s = 30.0;
    o.duration_s = 0.5;
    o.drain_s = 0.5;
    // 20 Mbit/s ground links, ample ISLs: 1000-byte frames at 4000/s
    // (32 Mbit/s) overload London's uplink.
    o.gsl_bps = 20e6;
    o.queue_frames = 64;
    o.flows = vec![
        FlowSpec {
            src: i("London"),
            dst: i("New-York-Newark"),
            rate_pps: 4000.0,
            size: FrameSize::Fixed(1000),
            kind: FlowKind::Oneway,
            arrivals: Default::default(),
            dscp: 0,
        },
        FlowSpec {
            src: i("Tokyo"),
            dst: i("Sydney"),
            rate_pps: 50.0,
            size: FrameSize::Fixed(200),
            kind: FlowKind::Ping,
            arrivals: Default::default(),
            dscp: 0,
        },
    ];
    let r = emulate::run(&o).expect("run");
    let (heavy, light) = (&r.flows[0], &r.flows[1]);
    assert_every_loss_has_a_node_and_reason(&r);

    // The heavy flow: tail drops on London's uplink, and the delay of a
    // full queue (64 frames of ~1 KB at 20 Mbit/s: some 27 ms).
    assert!(heavy.lost > 0, "{heavy:?}");
    let ow = heavy.one_way_ms.expect("delays");
    assert!(ow.p99 - ow.min > 10.0, "queueing delay: {ow:?}");
    let london = r.satellites as u32 + gateways[i("London") as usize];
    let dropping: Vec<_> = r.links.iter().filter(|l| l.tail_drops > 0).collect();
    assert!(!dropping.is_empty());
    assert!(
        dropping.iter().all(|l| l.from == london),
        "only London's uplink drops: {dropping:?}"
    );
    // That uplink runs at its capacity (and so does the heavy flow's
    // 20 Mbit/s downlink); the light flow's links carry a few percent of
    // theirs at most.
    assert!(
        dropping.iter().all(|l| l.utilisation > 0.9),
        "London's uplink is not full: {dropping:?}"
    );
    assert!(
        r.links
            .iter()
            .filter(|l| l.frames < 100)
            .all(|l| l.utilisation < 0.05),
        "{:?}",
        r.links
    );
    assert!(r
        .drops
        .iter()
        .all(|d| d.node == london && d.reason == "queue_full"));

    // The light flow: nothing lost, no queueing, the routes' RTT.
    assert_eq!((light.lost, light.dropped), (0, 0), "{light:?}");
    let lo = light.one_way_ms.expect("delays");
    assert!(lo.max - lo.min < 0.1, "no queueing: {lo:?}");
    // Its RTT is the routes' plus the time its four ground-link crossings
    // take at 20 Mbit/s (a 196-byte packet is some 276 bytes on the wire
    // once labelled and encrypted: 110 us each), nothing more.
    let serialisation_ms = 4.0 * 276.0 * 8.0 / 20e6 * 1e3;
    let over = light.rtt_vs_routes_max_ms.expect("compared");
    assert!(
        (over - serialisation_ms).abs() < 0.1,
        "{over} ms over the routes' RTT: {light:?}"
    );
}

/// `--traffic FILE` as a user writes it: a Poisson ping flow marked EF
/// and a constant-rate one-way flow, read back from `--json`.
#[test]
fn flows_from_a_traffic_file_run_with_their_arrivals_and_dscp() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meshplane-emulate-traffic-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let traffic = dir.join("traffic.toml");
    std::fs::write(
        &traffic,
        r#"[[flow]]
from = "London"
to = "Tokyo"
rate_pps = 200
kind = "ping"
arrivals = "poisson"
dscp = 46

[[flow]]
from = "Tokyo"
to = "New-York-Newark"
rate_pps = 50
size = "imix"
kind = "oneway"
"#,
    )
    .expect("traffic file");
    let json = dir.join("out.json");
    let svg = dir.join("out.svg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshplane"))
        .args([
            "emulate",
            "--gateways",
            "London,New-York-Newark,Tokyo",
            "--at",
            "30",
            "--duration",
            "2",
            "--drain",
            "0.5",
            "--quiet",
            "--traffic",
        ])
        .arg(&traffic)
        .arg("--json")
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("meshplane emulate");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("json")).expect("parses");
    let flows = v["flows"].as_array().expect("flows");
    assert_eq!(flows.len(), 2, "{v}");
    let (ping, oneway) = (&flows[0], &flows[1]);
    assert_eq!(ping["arrivals"], "poisson");
    assert_eq!(ping["dscp"], 46);
    assert_eq!(ping["kind"], "ping");
    assert_eq!(oneway["arrivals"], "cbr");
    assert_eq!(oneway["kind"], "oneway");
    // Poisson: about 400 requests in 2 s (within 4 standard deviations),
    // not exactly the 400 a constant rate sends.
    let sent = ping["sent"].as_u64().expect("sent");
    assert!((320..=480).contains(&sent), "{sent} sent");
    assert_eq!(oneway["sent"], 100);
    for f in flows {
        assert_eq!(f["lost"], 0, "{f}");
    }
    // The pings drawn stay out of the report.
    assert!(v.get("pings").is_none(), "pings in the JSON");
    // The picture: the RTT of the ping flow (the one-way flow has none),
    // a point per reply, and the map of the links both flows crossed,
    // with the gateways named.
    let picture = std::fs::read_to_string(&svg).expect("svg");
    assert!(picture.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(picture.trim_end().ends_with("</svg>"));
    for (open, close) in [
        ("<svg", "</svg>"),
        ("<text", "</text>"),
        ("<title", "</title>"),
    ] {
        assert_eq!(
            picture.matches(open).count(),
            picture.matches(close).count(),
            "{open} unbalanced"
        );
    }
    let lines: Vec<&str> = picture
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .collect();
    assert_eq!(lines.len(), 1, "one flow drawn");
    let points = lines[0]
        .split("points=\"")
        .nth(1)
        .unwrap_or("")
        .split(' ')
        .count() as u64;
    assert_eq!(points, ping["replies"].as_u64().expect("replies"));
    assert!(picture.contains("London -&gt; Tokyo"));
    for gw in ["London", "Tokyo", "New-York-Newark"] {
        assert!(
            picture.contains(&format!(">{gw}</text>")),
            "{gw} not on the map"
        );
    }
    let loaded = picture.matches("</title></line>").count();
    assert!(loaded >= 8, "{loaded} links on the map");
    // A flow that is not there is refused by number.
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_meshplane"))
        .args([
            "emulate",
            "--duration",
            "1",
            "--gateways",
            "2",
            "--svg-flows",
            "3",
            "--svg",
        ])
        .arg(dir.join("bad.svg"))
        .output()
        .expect("meshplane emulate");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--svg-flows 3: there are 1 flows"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // Mixing a file with --pairs is refused by name.
    let both = std::process::Command::new(env!("CARGO_BIN_EXE_meshplane"))
        .args(["emulate", "--duration", "1", "--pairs", "3", "--traffic"])
        .arg(&traffic)
        .output()
        .expect("meshplane emulate");
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("--pairs"),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Nodes that build the satellites' node labels only once a frame may
/// need one, straight from the snapshot's entries (the defaults), forward
/// every frame as nodes that build every install whole through the
/// agent's install path: the same report, frame for frame and install
/// for install.
#[test]
fn tables_built_on_demand_forward_as_the_agents_do() {
    let names = ["London", "New-York-Newark", "Tokyo", "Sydney", "Lagos"];
    let (st, gateways) = gids(&names);
    let mut o = Options::new(Preset::Starlink550, st, gateways.clone());
    o.at_s = 60.0;
    o.duration_s = 1.0;
    o.drain_s = 0.3;
    o.flows = emulate::flows_for(
        &emulate::pairs(gateways.len() as u32, None),
        20.0,
        FrameSize::Imix,
        FlowKind::Ping,
    );
    o.record_pings = true;
    let on_demand = emulate::run(&o).expect("run");
    o.sat_labels = emulate::node::SatLabels::Always;
    o.install = emulate::install::InstallPath::Agent;
    let always = emulate::run(&o).expect("run");
    let json = |r: &Report| {
        let mut v = serde_json::to_value(r).expect("json");
        for k in ["setup_s", "wall_s", "wall_per_sim_s", "packet_hops_per_s"] {
            v["totals"][k] = serde_json::Value::Null;
        }
        v
    };
    assert!(on_demand.totals.replies > 0 && on_demand.totals.lost == 0);
    assert_eq!(json(&on_demand), json(&always));
}

/// A satellite on the path fails under a 1000 pps ping flow and comes
/// back a second later (`--fail`): what was on its links when it went dark
/// is lost there, counted as `link_down`, and nothing else; every node
/// applies the failure at once and the flow takes another path, then the
/// scheduled path again once the satellite is back, without loss.
#[test]
fn a_satellite_that_fails_and_comes_back_costs_what_was_on_its_links() {
    use meshplane_control::routing::Router;
    use meshplane_control::schedule::FailureEvent;
    let (st, gateways) = gids(&["London", "Tokyo"]);
    let at_s = 30.0;
    let engine =
        Engine::new(Constellation::preset(Preset::Starlink550), st.clone()).expect("engine");
    let n_sats = engine.constellation().len() as u32;
    let topo = engine
        .topology(at_s + 1.0, &Failures::new())
        .expect("topology");
    let path = Router::new()
        .path(&topo, gateways[0], gateways[1])
        .expect("a path");
    let sats: Vec<u32> = path.nodes.iter().copied().filter(|&v| v < n_sats).collect();
    let victim = sats[sats.len() / 2];
    let mut o = Options::new(Preset::Starlink550, st, gateways.clone());
    o.at_s = at_s;
    o.duration_s = 3.0;
    o.drain_s = 0.5;
    o.flows = emulate::flows_for(&[(0, 1)], 1000.0, FrameSize::Fixed(64), FlowKind::Ping);
    o.failures = vec![
        (1.0, FailureEvent::SatelliteDown(victim)),
        (2.0, FailureEvent::SatelliteUp(victim)),
    ];
    let r = emulate::run(&o).expect("run");
    let f = &r.flows[0];
    assert_eq!(f.sent, 3000);
    assert_every_loss_has_a_node_and_reason(&r);
    // Requests and replies on the victim's links when it went dark: a few
    // milliseconds' worth each way.
    assert!(f.lost > 0, "nothing was on the satellite's links: {r:?}");
    assert!(f.lost <= 40, "{} lost: {:?}", f.lost, r.drops);
    for d in &r.drops {
        assert_eq!(d.reason, "link_down", "{d:?}");
    }
    assert!(f.path_changes >= 2, "{} path changes", f.path_changes);
    // A failure in a file, as a user writes it, and one that is not an
    // ISL or satellite of the constellation.
    let failures = meshplane::cli::emulate::parse_failures(&format!(
        "# planned\n1.0 sat-down {victim}\n2.5 isl-up 1 2  # back\n"
    ))
    .expect("parses");
    assert_eq!(
        failures,
        vec![
            (1.0, FailureEvent::SatelliteDown(victim)),
            (2.5, FailureEvent::IslUp(1, 2))
        ]
    );
    let e = meshplane::cli::emulate::parse_failures("soon sat-down 3").expect_err("refused");
    assert!(e.contains("line 1") && e.contains("seconds"), "{e}");
    o.failures = vec![(1.0, FailureEvent::SatelliteDown(n_sats + 5))];
    let e = emulate::run(&o).expect_err("refused").to_string();
    assert!(e.contains("satellites of the constellation"), "{e}");
}
