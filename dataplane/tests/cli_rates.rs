//! The rates `replay` (and `run`, through the same report) states: frames
//! forwarded per second, and their bits per second at layer 2 with the
//! 4-byte FCS, as `meshplane-bench` and RFC 2544 count them.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");
const GW: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/gw-a.toml");

fn meshplane(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run meshplane");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `(packets in, packets out, Mpps, Gbps)` of a report's first line.
fn rates(report: &str) -> (u64, u64, f64, f64) {
    let line = report.lines().next().unwrap_or_default();
    let num = |after: &str| -> f64 {
        let at = line
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} in {line}"));
        line[..at]
            .rsplit(' ')
            .find(|w| !w.is_empty())
            .and_then(|w| w.trim_start_matches("forwarded").parse().ok())
            .unwrap_or_else(|| panic!("number before {after:?} in {line}"))
    };
    assert!(line.contains(": forwarded "), "{line}");
    assert!(line.ends_with(" Gbps L2 incl. FCS"), "{line}");
    (
        num(" packets in") as u64,
        num(" out,") as u64,
        num(" Mpps,"),
        num(" Gbps L2"),
    )
}

fn replay(tag: &str, dst_mac: &str) -> String {
    let dir = std::env::temp_dir();
    let pcap = dir.join(format!("mp-rates-{tag}-{}.pcap", std::process::id()));
    let out = dir.join(format!("mp-rates-{tag}-{}-out.pcap", std::process::id()));
    let (pcap_s, out_s) = (
        pcap.to_str().expect("utf-8 temp dir"),
        out.to_str().expect("utf-8 temp dir"),
    );
    meshplane(&[
        "gen",
        "--out",
        pcap_s,
        "--count",
        "5000",
        "--size",
        "64",
        "--dst-mac",
        dst_mac,
    ]);
    let report = meshplane(&[
        "replay", "--config", GW, "--pcap", pcap_s, "--out", out_s, "--loops", "100",
    ]);
    let _ = std::fs::remove_file(pcap);
    let _ = std::fs::remove_file(out);
    report
}

#[test]
fn rates_count_the_frames_forwarded_with_their_fcs() {
    let report = replay("fwd", "02:00:00:00:0a:01");
    let (rx, tx, mpps, gbps) = rates(&report);
    assert_eq!((rx, tx), (500_000, 500_000), "{report}");
    assert!(mpps > 0.01, "{report}");
    // 64-byte frames on the wire (60 in the capture + FCS): 512 bits each.
    let per_frame = gbps * 1e3 / mpps;
    let slack = 512.0 * (0.0005 / mpps + 0.0005 / gbps) + 1e-6;
    assert!(
        (per_frame - 512.0).abs() <= slack,
        "{per_frame} bits: {report}"
    );
}

#[test]
fn frames_received_and_dropped_are_not_a_forwarding_rate() {
    // Sent to a MAC the gateway does not have: all dropped, none forwarded.
    let report = replay("drop", "02:00:00:00:0a:99");
    let (rx, tx, mpps, gbps) = rates(&report);
    assert_eq!((rx, tx), (500_000, 0), "{report}");
    assert_eq!((mpps, gbps), (0.0, 0.0), "{report}");
}
