//! Smoke test of `punt_flood`: short runs whose counts are checked as a
//! reader of the report would check them. No speed is compared here (the
//! CI machine is shared); the transit ratio is the benchmark run's.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn punt_flood(args: &[&str], name: &str) -> (Output, Value) {
    let json = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("punt_flood_{name}.json"));
    let _ = std::fs::remove_file(&json);
    let out = Command::new(env!("CARGO_BIN_EXE_punt_flood"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run punt_flood");
    let text = std::fs::read_to_string(&json).unwrap_or_else(|e| {
        panic!(
            "no JSON from punt_flood ({e}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, serde_json::from_str(&text).expect("json"))
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

fn f(v: &Value, k: &str) -> f64 {
    v[k].as_f64()
        .unwrap_or_else(|| panic!("{k} missing in {v}"))
}

#[test]
fn every_flood_frame_is_punted_policed_or_refused_and_transit_all_forwarded() {
    // 100 kpps against a policer of 1000 pps; a queue of 8 slots that the
    // consumer empties every 5 ms, so the policer's burst overflows it.
    let rate = 100_000.0;
    let (out, r) = punt_flood(
        &[
            "--rounds",
            "2",
            "--seconds",
            "0.2",
            "--warmup",
            "0",
            "--rate",
            "100kpps",
            "--queue",
            "8",
            "--consumer-idle-us",
            "5000",
            "--min-ratio",
            "0",
        ],
        "accounting",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "punt_flood failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("PASS"), "{stdout}");
    assert_eq!(r["failures"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["node"], "sat-1");
    let flood = &r["flood"];
    assert_eq!(flood["dst"], "192.0.2.11");
    let (icmp_pps, burst) = (u(flood, "icmp_pps"), u(flood, "icmp_burst"));
    assert_eq!((icmp_pps, burst), (1000, 100), "sat-1's [punt] defaults");

    let rounds = r["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 4, "2 rounds of each kind");
    let mut full = 0;
    for (i, x) in rounds.iter().enumerate() {
        // Interleaved: no flood, flood, no flood, flood.
        assert_eq!(x["flood"].as_bool(), Some(i % 2 == 1), "{x}");
        // Transit: every frame offered was forwarded, nothing else dropped.
        assert!(u(x, "transit_offered") > 0, "{x}");
        assert_eq!(u(x, "transit_forwarded"), u(x, "transit_offered"), "{x}");
        assert!(
            x["other_drops"].as_object().is_some_and(|d| d.is_empty()),
            "{x}"
        );
        // Every flood frame: punted, policed or refused by a full queue.
        let offered = u(x, "flood_offered");
        assert_eq!(u(x, "flood_frames"), offered, "{x}");
        assert_eq!(
            u(x, "punted") + u(x, "punt_policed") + u(x, "punt_full"),
            offered,
            "{x}"
        );
        // The control thread got what was punted, within the policer's rule.
        assert_eq!(u(x, "consumer_received"), u(x, "punted"), "{x}");
        assert!(u(x, "consumer_received") <= u(x, "policer_bound"), "{x}");
        let secs = f(x, "secs");
        if i % 2 == 0 {
            assert_eq!((offered, u(x, "punted")), (0, 0), "{x}");
        } else {
            // Paced on the run's clock: never ahead of it, and caught up.
            let due = rate * secs;
            assert!(offered as f64 <= due + 1.0, "{x}");
            assert!(offered as f64 >= 0.8 * due, "{x}");
            let bound = (icmp_pps as f64 * secs).floor() as u64 + burst;
            assert!(u(x, "policer_bound").abs_diff(bound) <= 1, "{x}");
            assert!(offered > u(x, "policer_bound"), "a flood: {x}");
            assert!(u(x, "punt_policed") > 0, "{x}");
            assert!(u(x, "punted") > 0, "{x}");
            full += u(x, "punt_full");
        }
    }
    assert!(full > 0, "the burst overflows a queue of 8");
    let s = &r["summary"];
    assert_eq!(s["ratio_basis"], "on-cpu");
    assert_eq!(u(s, "punt_full"), full);
    assert!(u(s, "consumer_received") <= u(s, "policer_bound"), "{s}");
    assert_eq!(
        u(s, "policer_bound"),
        rounds.iter().map(|x| u(x, "policer_bound")).sum::<u64>()
    );
}

#[test]
fn a_ratio_below_the_minimum_fails_the_run() {
    let (out, r) = punt_flood(
        &[
            "--rounds",
            "1",
            "--seconds",
            "0.05",
            "--warmup",
            "0",
            "--rate",
            "100kpps",
            "--min-ratio",
            "1000",
        ],
        "min_ratio",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("below --min-ratio 1000"), "{stderr}");
    let failures = r["failures"].as_array().expect("failures");
    assert_eq!(failures.len(), 1, "only the ratio: {failures:?}");
}

#[test]
fn the_baseline_floods_are_accounted_for() {
    let args = |kind| {
        [
            "--rounds",
            "1",
            "--seconds",
            "0.05",
            "--warmup",
            "0",
            "--rate",
            "100kpps",
            "--min-ratio",
            "0",
            "--flood-kind",
            kind,
        ]
    };
    // Dropped at the first check, never punted.
    let (out, r) = punt_flood(&args("not-for-us"), "not_for_us");
    assert!(out.status.success(), "{r}");
    let x = &r["rounds"][1];
    assert!(u(x, "flood_offered") > 0, "{x}");
    assert_eq!(u(x, "flood_dropped"), u(x, "flood_offered"), "{x}");
    assert_eq!(u(x, "punted") + u(x, "punt_policed"), 0, "{x}");
    assert_eq!(u(x, "transit_forwarded"), u(x, "transit_offered"), "{x}");
    // Made and freed by the tester: nothing offered, their slots empty.
    let (out, r) = punt_flood(&args("tester-only"), "tester_only");
    assert!(out.status.success(), "{r}");
    let x = &r["rounds"][1];
    assert!(u(x, "flood_frames") > 0, "{x}");
    assert_eq!(u(x, "flood_offered"), 0, "{x}");
    assert_eq!(
        u(x, "transit_offered") + u(x, "flood_frames"),
        32 * u(x, "bursts"),
        "{x}"
    );
    assert_eq!(u(x, "transit_forwarded"), u(x, "transit_offered"), "{x}");
}

#[test]
fn cpu_pacing_offers_the_rate_per_second_the_worker_ran() {
    let (out, r) = punt_flood(
        &[
            "--rounds",
            "1",
            "--seconds",
            "0.1",
            "--warmup",
            "0",
            "--rate",
            "100kpps",
            "--min-ratio",
            "0",
            "--pace",
            "cpu",
        ],
        "pace_cpu",
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(r["flood"]["pace"], "cpu");
    let x = &r["rounds"][1];
    let due = 100_000.0 * f(x, "cpu_secs");
    let made = u(x, "flood_frames") as f64;
    // The CPU clock is read every 32 bursts, the run's clock in between: a
    // preemption between two readings runs ahead until the next one.
    assert!(made <= 1.02 * due + 32.0 && made >= 0.8 * due, "{x}");
    let per_cpu = f(x, "flood_pps_on_cpu");
    assert!(
        (per_cpu - made / f(x, "cpu_secs")).abs() < 1e-6 * per_cpu,
        "{x}"
    );
}
