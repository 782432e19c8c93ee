//! Smoke test of `meshplane-bench`: a tiny run of every scenario over the
//! memory backend, then the report's arithmetic as a reader would check
//! it. Seconds, not a benchmark: no figure here is compared to a speed.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn bench(args: &[&str], name: &str) -> Value {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let json = dir.join(format!("{name}.json"));
    let svg = dir.join(format!("{name}.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_meshplane-bench"))
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("run meshplane-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "meshplane-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("scenario") && stdout.contains("xI/O"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&svg).expect("svg written");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).expect("json")
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// tx + loss = offered; Mpps = tx / time; Gbps = Mpps x frame size (L2 with
/// FCS, and + 20 B on the wire).
fn check_figures(fig: &Value, frame_bytes: f64) {
    let (offered, tx, lost) = (u(fig, "offered"), u(fig, "tx"), u(fig, "lost"));
    assert_eq!(tx + lost, offered, "{fig}");
    assert!(close(
        f(fig, "loss_pct"),
        lost as f64 * 100.0 / offered as f64
    ));
    let mpps = f(fig, "mpps");
    assert!(close(mpps, tx as f64 / f(fig, "secs") / 1e6), "{fig}");
    assert!(
        close(f(fig, "gbps_l2"), mpps * frame_bytes * 8.0 / 1e3),
        "{fig}"
    );
    assert!(
        close(f(fig, "gbps_l1"), mpps * (frame_bytes + 20.0) * 8.0 / 1e3),
        "{fig}"
    );
    // The per-core rate: frames per second the thread was on a CPU, which
    // is never more than the measured time.
    let cpu = f(fig, "cpu_secs");
    assert!(cpu > 0.0 && cpu <= f(fig, "secs"), "{fig}");
    assert!(close(f(fig, "mpps_on_cpu"), tx as f64 / cpu / 1e6), "{fig}");
}

/// The rate ratios compare: per on-CPU second.
fn rate(fig: &Value) -> f64 {
    f(fig, "mpps_on_cpu")
}

#[test]
fn every_role_over_memory_adds_up() {
    // 256 distinct frames, 1500 offered: the egress gateway sees the same
    // encrypted frames several times and must still lose none.
    let r = bench(
        &[
            "--scenario",
            "all",
            "--size",
            "64,imix",
            "--frames",
            "256",
            "--count",
            "1500",
            "--warmup",
            "0",
        ],
        "roles",
    );
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 8, "4 roles x 2 sizes");
    let mut seen = std::collections::BTreeSet::new();
    for res in results {
        seen.insert(res["scenario"].as_str().unwrap_or("?").to_string());
        let bytes = f(res, "frame_bytes");
        let p = &res["pipeline"];
        check_figures(p, bytes);
        // At top speed over memory nothing may be lost.
        assert_eq!(u(p, "offered"), 1500, "{res}");
        assert_eq!(u(p, "lost"), 0, "{res}");
        assert!(
            res["drops"].as_object().is_some_and(|d| d.is_empty()),
            "{res}"
        );
        check_figures(&res["io_ceiling"], bytes);
        assert_eq!(res["ratio_basis"], "on-cpu");
        let ratio = f(res, "ratio_io");
        assert!(close(ratio, rate(p) / rate(&res["io_ceiling"])));
        let lat = &res["latency_ns"];
        assert!(u(lat, "p50") <= u(lat, "p99") && u(lat, "p99") <= u(lat, "max"));
        let transit = res["scenario"] == "satellite-transit";
        assert_eq!(res["crypto_ceiling"].is_null(), transit, "{res}");
        if !transit {
            assert!(close(
                f(res, "ratio_crypto"),
                rate(p) / f(&res["crypto_ceiling"], "mpps")
            ));
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    // IMIX is the 7:4:1 mix of 64, 576 and 1500 B at gateway A's LAN.
    let imix = results
        .iter()
        .find(|x| x["traffic"] == "imix")
        .expect("imix row");
    assert!(close(f(imix, "lan_frame_bytes"), 4252.0 / 12.0));
}

#[test]
fn ndr_search_brackets_the_rate() {
    let r = bench(
        &[
            "--scenario",
            "transit",
            "--size",
            "64",
            "--frames",
            "256",
            "--duration",
            "0.05",
            "--warmup",
            "0",
            "--no-baselines",
            "--ndr",
            "--ndr-trial",
            "0.05",
            "--ndr-resolution",
            "0.1",
        ],
        "ndr",
    );
    let res = &r["results"][0];
    assert!(res["io_ceiling"].is_null() && res["crypto_ceiling"].is_null());
    let ndr = &res["ndr"];
    let trials = ndr["trials"].as_array().expect("trials");
    assert!(!trials.is_empty());
    let best = f(ndr, "mpps");
    for t in trials {
        check_figures(&t["figures"], f(res, "frame_bytes"));
        let rate = f(t, "offered_mpps");
        let pass = t["pass"].as_bool().expect("pass");
        // Passing trials lose nothing; NDR is the best passing rate, and
        // no failing rate lies below it.
        assert_eq!(pass, u(&t["figures"], "lost") == 0, "{t}");
        if pass {
            assert!(rate <= best);
        } else {
            assert!(rate > best);
        }
    }
}

#[test]
fn a_user_capture_is_replayed_in_a_loop() {
    use meshplane::gen::{generate, FrameSize, GenSpec};
    use meshplane::io::pcap::CaptureWriter;
    // 50 IPv6 frames of 512 B from gateway A's LAN, replayed 12 times over.
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lan6.pcap");
    let spec = GenSpec {
        count: 50,
        size: FrameSize::Fixed(512),
        dst: "fd00:2::/32".parse().expect("prefix"),
        src: "fd00:1::/32".parse().expect("prefix"),
        ..GenSpec::default()
    };
    let mut w = CaptureWriter::create(&path).expect("create pcap");
    for p in generate(&spec).expect("generate") {
        w.write(p.ts, &p.data).expect("write");
    }
    w.finish().expect("finish");
    let r = bench(
        &[
            "--pcap",
            path.to_str().expect("utf-8 path"),
            "--scenario",
            "chain,egress",
            "--count",
            "600",
            "--warmup",
            "0",
        ],
        "pcap",
    );
    for res in r["results"].as_array().expect("results") {
        assert_eq!(res["traffic"], "lan6.pcap");
        assert_eq!(u(res, "frames_per_pass"), 50);
        assert!(close(f(res, "lan_frame_bytes"), 512.0));
        let p = &res["pipeline"];
        check_figures(p, f(res, "frame_bytes"));
        assert_eq!((u(p, "offered"), u(p, "lost")), (600, 0), "{res}");
    }
}

#[test]
fn af_xdp_over_veth_adds_up() {
    // Two veth pairs made and deleted by the run (root, as on the project's
    // machines); copy mode, so a few thousand frames take well under a second.
    let r = bench(
        &[
            "--backend",
            "afxdp",
            "--scenario",
            "transit,egress",
            "--size",
            "64",
            "--frames",
            "256",
            "--count",
            "1500",
            "--warmup",
            "0",
        ],
        "afxdp",
    );
    let results = r["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    for res in results {
        assert_eq!(res["backend"], "afxdp");
        let p = &res["pipeline"];
        check_figures(p, f(res, "frame_bytes"));
        assert_eq!((u(p, "offered"), u(p, "lost")), (1500, 0), "{res}");
        check_figures(&res["io_ceiling"], f(res, "frame_bytes"));
    }
}
