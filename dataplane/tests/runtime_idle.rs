//! Adaptive idle: a node with nothing to do uses under 5% of a core,
//! measured from the kernel's own accounting (/proc/self/task/*/stat), and
//! still forwards the first frame that arrives after the quiet spell.
//! Its own test binary, so no other test's threads share the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use meshplane::chain::default_chain;
use meshplane::config::{Idle, Mode};
use meshplane::frame::{Frame, HeapFrame};
use meshplane::runtime::{run, Layout, MemoryBackend, RunOptions, StatsHub, TableStore};
use meshplane::tables::Tables;

/// CPU time (user + system, in clock ticks) of this process's threads
/// whose name starts with `prefix`.
fn thread_ticks(prefix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = entry.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(|w| w.parse().unwrap_or(0))
            .collect();
        total += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    }
    total
}

fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK is a number")
}

#[test]
fn adaptive_idle_node_sleeps_and_wakes_for_the_first_frame() {
    let hz = clock_ticks_per_second();
    let hops = default_chain().expect("chain");
    let cfg = &hops[1].node; // sat-1: label 1002 in on gsl-a -> gsl-b
    let layout = Layout::new(&[], Mode::RunToCompletion).expect("layout");
    let mut backend = MemoryBackend::new(cfg.ports.len(), 1, 64);
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
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st, h) = (stop.clone(), store.clone(), hub.clone());
    let node = thread::Builder::new()
        .name("supervisor".into())
        .spawn(move || {
            let opts = RunOptions {
                idle: Idle::Adaptive,
                ..RunOptions::default()
            };
            run(&mut backend, &layout, &st, &h, &s, &opts, |_| {}).expect("run")
        })
        .expect("spawn");

    // Let the worker back off, then measure two seconds of idling: the
    // worker and the supervising thread together.
    thread::sleep(Duration::from_millis(300));
    let window = Duration::from_secs(2);
    let worker_before = thread_ticks("worker");
    let before = worker_before + thread_ticks("supervisor");
    let t0 = Instant::now();
    thread::sleep(window);
    let used = thread_ticks("worker") + thread_ticks("supervisor") - before;
    let secs = t0.elapsed().as_secs_f64();
    let share = used as f64 / hz as f64 / secs;
    eprintln!(
        "idle node: {used} ticks in {secs:.2} s = {:.2}% of a core (worker {} ticks)",
        share * 100.0,
        thread_ticks("worker") - worker_before
    );
    assert!(
        share < 0.05,
        "an idle adaptive node used {:.1}% of a core",
        share * 100.0
    );

    // The first frame after the quiet spell goes through.
    let mut frame = vec![0u8; 60];
    frame[..6].copy_from_slice(&[2, 0, 0, 0, 1, 1]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0x0a, 2]);
    frame[12..14].copy_from_slice(&0x8847u16.to_be_bytes());
    frame[14..18].copy_from_slice(&((1002u32 << 12) | (1 << 8) | 64).to_be_bytes());
    rx.push(HeapFrame::from_bytes(&frame))
        .expect("ring has room");
    let sent_at = Instant::now();
    let out = loop {
        if let Some(f) = tx.pop() {
            break f;
        }
        assert!(
            sent_at.elapsed() < Duration::from_secs(2),
            "first frame after idle not forwarded"
        );
        thread::sleep(Duration::from_micros(50));
    };
    let waited = sent_at.elapsed();
    let label = u32::from_be_bytes(out.data()[14..18].try_into().expect("4 bytes")) >> 12;
    assert_eq!(label, 1003, "swapped as the LFIB says");
    eprintln!("first frame after idle forwarded in {waited:?}");

    stop.store(true, Ordering::Relaxed);
    let summary = node.join().expect("node");
    let w = &summary.snapshot.workers[0];
    assert_eq!(w.stats.rx_packets(), 1);
    assert_eq!(w.stats.tx_packets(), 1);
    assert!(w.empty_polls > 0 && w.polls > w.empty_polls);
}
