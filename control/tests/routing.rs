//! Backups, failures and the schedule's tables, checked by walking the
//! label-switched paths the way the data plane would.

use meshplane_control::labels::LabelPlan;
use meshplane_control::routing::{link, Router};
use meshplane_control::schedule::{FailureEvent, ScheduleConfig, Scheduler};
use meshplane_control::tables::{LfibAction, TableSet};
use meshplane_control::{Constellation, Engine, Failures, GroundStations, NodeId, Preset};
use std::collections::HashSet;
use std::sync::Arc;

fn engine() -> (Engine, GroundStations) {
    let g = GroundStations::top100();
    let e = Engine::new(Constellation::preset(Preset::Kuiper630), g.clone()).expect("engine");
    (e, g)
}

/// Follows FEC then LFIB entries from gateway `src` toward `dst`; returns
/// the nodes visited, ending at the node that popped the label.
fn walk(tables: &TableSet, src: u32, dst: u32) -> Vec<NodeId> {
    let n = tables.n_sats as NodeId;
    let ingress = tables.node(n + src).expect("ingress");
    let fec = ingress
        .fec
        .iter()
        .find(|f| f.egress_gid == dst)
        .expect("FEC entry");
    let mut nodes = vec![n + src, fec.next_hop];
    let mut label = fec.label;
    let mut cur = fec.next_hop;
    for _ in 0..200 {
        let r = tables
            .node(cur)
            .and_then(|t| t.lfib.iter().find(|r| r.label == label))
            .unwrap_or_else(|| panic!("node {cur} has no entry for label {label}"));
        match r.action {
            LfibAction::Pop => return nodes,
            LfibAction::Swap { out_label } => {
                label = out_label;
                cur = r.next_hop;
                nodes.push(cur);
            }
        }
    }
    panic!("forwarding loop: {nodes:?}");
}

#[test]
fn disjoint_backups_share_no_link() {
    let (mut e, g) = engine();
    let topo = e.topology(10.0, &Failures::new()).expect("topology");
    let (a, b) = (
        g.find("Rio de Janeiro").expect("rio"),
        g.find("Saint Petersburg").expect("spb"),
    );
    let paths = e.disjoint_paths(&topo, a, b, 3);
    assert_eq!(paths.len(), 3);
    let primary = Router::new().path(&topo, a, b).expect("primary");
    assert_eq!(paths[0].length_m, primary.length_m);
    let mut seen = HashSet::new();
    for p in &paths {
        assert_eq!(p.nodes.first(), Some(&topo.gs_node(a)));
        assert_eq!(p.nodes.last(), Some(&topo.gs_node(b)));
        for l in p.links() {
            assert!(topo.link_length(l.0, l.1).is_some(), "{l:?} is not a link");
            assert!(seen.insert(l), "link {l:?} shared between backups");
        }
    }
    assert!(paths.windows(2).all(|w| w[0].length_m <= w[1].length_m));
}

#[test]
fn tables_forward_along_the_shortest_path() {
    let (mut e, g) = engine();
    let s = e
        .snapshot(10.0, &Failures::new(), 0, None)
        .expect("snapshot");
    let (a, b) = (
        g.find("Manila").expect("manila"),
        g.find("Dalian").expect("dalian"),
    );
    let path = s.path(a, b).expect("path");
    assert_eq!(walk(&s.tables, a, b), path.nodes);
    // Every gateway pair the trees connect is forwarded to its egress.
    for src in 0..g.len() as u32 {
        for dst in (0..g.len() as u32).step_by(7) {
            if let (Some(p), true) = (s.path(src, dst), src != dst) {
                assert_eq!(walk(&s.tables, src, dst), p.nodes);
            }
        }
    }
}

/// A schedule over Kuiper-630 from t = 10 s, and the gids of Rio de
/// Janeiro and Saint Petersburg.
fn rio_to_st_petersburg() -> (Scheduler, u32, u32) {
    let (e, g) = engine();
    let (a, b) = (
        g.find("Rio de Janeiro").expect("rio"),
        g.find("Saint Petersburg").expect("spb"),
    );
    let sched = Scheduler::new(
        e,
        ScheduleConfig {
            start_s: 10.0,
            ..ScheduleConfig::default()
        },
    );
    (sched, a, b)
}

#[test]
fn failed_isl_on_the_active_path_reroutes_at_once() {
    let (mut sched, a, b) = rio_to_st_petersburg();
    let first = sched.tick(0).expect("tick").expect("epoch 0 at t = 0");
    let before = walk(&first.tables, a, b);
    let isl = before
        .windows(2)
        .map(|w| link(w[0], w[1]))
        .find(|&(x, y)| (y as usize) < first.tables.n_sats && (x as usize) < first.tables.n_sats)
        .expect("path uses an ISL");
    let p = sched
        .fail(30_000_000, FailureEvent::IslDown(isl.0, isl.1))
        .expect("recompute")
        .expect("published at once");
    assert_eq!(p.activate_at_ns, 30_000_000);
    // Same label epoch as the active tables: only next hops change.
    assert_eq!(p.epoch, 0);
    let after = walk(&p.tables, a, b);
    assert!(
        after.windows(2).all(|w| link(w[0], w[1]) != isl),
        "{after:?}"
    );
    assert_eq!(after.last(), before.last());
    // Packets already labelled under epoch 0 still arrive, avoiding the failed link.
    let old = LabelPlan::default().label(0, b).expect("label");
    let mut cur = before[1];
    let mut label = old;
    let mut hops = 0;
    loop {
        let r = p
            .tables
            .node(cur)
            .and_then(|t| t.lfib.iter().find(|r| r.label == label))
            .expect("old label still forwarded");
        match r.action {
            LfibAction::Pop => break,
            LfibAction::Swap { out_label } => {
                assert_ne!(link(cur, r.next_hop), isl);
                label = out_label;
                cur = r.next_hop;
            }
        }
        hops += 1;
        assert!(hops < 200, "loop");
    }
    assert_eq!(cur, *before.last().expect("egress"));
}

#[test]
fn schedule_alternates_label_blocks_and_keeps_the_previous_one() {
    let (e, g) = engine();
    let dst = g.find("Dalian").expect("dalian");
    let mut sched = Scheduler::new(e, ScheduleConfig::default());
    let plan = LabelPlan::default();
    assert_eq!(sched.next_wakeup_ns(), 0);
    let p0 = sched.tick(0).expect("tick").expect("epoch 0");
    // Tables for 100 ms are computed at 0 (lead) and published at 100 ms.
    assert!(sched.tick(50_000_000).expect("tick").is_none());
    assert_eq!(sched.next_wakeup_ns(), 100_000_000);
    let p1 = sched.tick(100_000_000).expect("tick").expect("epoch 1");
    assert_eq!((p0.epoch, p1.epoch), (0, 1));
    assert!((p1.tables.t_s - 0.1).abs() < 1e-9);
    let sat_lfib = &p1.tables.nodes[0].lfib;
    let has = |l: u32| sat_lfib.iter().any(|r| r.label == l);
    assert!(has(plan.label(1, dst).expect("l")) && has(plan.label(0, dst).expect("l")));
    let p2 = sched.tick(200_000_000).expect("tick").expect("epoch 2");
    let sat_lfib = &p2.tables.nodes[0].lfib;
    // Epoch 2 reuses block 0 for its own labels: exactly one entry per label.
    let l0 = plan.label(2, dst).expect("l");
    assert_eq!(sat_lfib.iter().filter(|r| r.label == l0).count(), 1);
    assert!(sat_lfib
        .iter()
        .any(|r| r.label == plan.label(1, dst).expect("l")));
}

/// Hypatia's formulation, done the slow way: sat-to-sat shortest distances
/// (a plain heap Dijkstra from every satellite in view of the source), then
/// the best `gsl(src, a) + d(a, b) + gsl(b, dst)`.
fn reference_rtt_ms(
    topo: &meshplane_control::topology::Topology,
    src: u32,
    dst: u32,
) -> Option<f64> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let n = topo.n_sats();
    let (src_sats, src_len) = topo.gsl_of(src as usize);
    let (dst_sats, dst_len) = topo.gsl_of(dst as usize);
    let mut best = f64::INFINITY;
    for (&a, &la) in src_sats.iter().zip(src_len) {
        let mut dist = vec![f64::INFINITY; n];
        let mut heap = BinaryHeap::new();
        dist[a as usize] = 0.0;
        heap.push(Reverse((0u64, a)));
        while let Some(Reverse((bits, u))) = heap.pop() {
            let du = f64::from_bits(bits);
            if du > dist[u as usize] {
                continue;
            }
            let (nb, len) = topo.isl_neighbors(u as usize);
            for (&v, &l) in nb.iter().zip(len) {
                if du + l < dist[v as usize] {
                    dist[v as usize] = du + l;
                    heap.push(Reverse(((du + l).to_bits(), v)));
                }
            }
        }
        for (&b, &lb) in dst_sats.iter().zip(dst_len) {
            best = best.min(la + dist[b as usize] + lb);
        }
    }
    best.is_finite()
        .then(|| 2.0 * best / meshplane_control::routing::SPEED_OF_LIGHT_M_S * 1e3)
}

#[test]
fn trees_agree_with_pairwise_reference_on_starlink() {
    let g = GroundStations::top100();
    let mut e = Engine::new(Constellation::preset(Preset::Starlink550), g).expect("engine");
    let snap = e.routes(47.3, &Failures::new()).expect("routes");
    let mut compared = 0;
    for src in (0..100u32).step_by(9) {
        for dst in (3..100u32).step_by(11) {
            if src == dst {
                continue;
            }
            let want = reference_rtt_ms(&snap.topology, src, dst);
            let got = snap.rtt_ms(src, dst);
            match (want, got) {
                (Some(w), Some(g)) => assert!((w - g).abs() < 1e-6, "{src}->{dst}: {g} vs {w}"),
                (None, None) => {}
                other => panic!("{src}->{dst}: {other:?}"),
            }
            let p = snap.path(src, dst);
            assert_eq!(p.map(|p| p.rtt_ms()).is_some(), got.is_some());
            compared += 1;
        }
    }
    assert!(compared > 50);
}

#[test]
fn epochs_follow_the_clock_whenever_a_node_starts() {
    // Two nodes on one clock: one started at 0, one 1.05 s later. Both must
    // put the same epoch (and so the same label block) on the air.
    let (e1, _) = engine();
    let (e2, _) = engine();
    let mut early = Scheduler::new(e1, ScheduleConfig::default());
    let mut late = Scheduler::new(e2, ScheduleConfig::default());
    let mut last = None;
    let mut t = 0;
    while t <= 1_050_000_000 {
        if let Some(p) = early.tick(t).expect("tick") {
            last = Some(p.epoch);
        }
        t += 10_000_000;
    }
    let p = late
        .tick(1_050_000_000)
        .expect("tick")
        .expect("publishes at once");
    assert_eq!(p.activate_at_ns, 1_000_000_000);
    assert_eq!(Some(p.epoch), last);
    assert_eq!(p.epoch, 10);
    let next = late.tick(1_100_000_000).expect("tick").expect("next epoch");
    assert_eq!(next.epoch, 11);
}

#[test]
fn a_driver_one_step_late_publishes_the_current_epoch_not_the_missed_one() {
    // Woken exactly one step after the missed activation (100 ms), the
    // epoch in force is 2 (activates at 200 ms): epoch 1 is already stale.
    let (e, _) = engine();
    let mut sched = Scheduler::new(e, ScheduleConfig::default());
    assert_eq!(sched.tick(0).expect("tick").expect("epoch 0").epoch, 0);
    let p = sched
        .tick(200_000_000)
        .expect("tick")
        .expect("publishes at once");
    assert_eq!((p.epoch, p.activate_at_ns), (2, 200_000_000));
    let next = sched.tick(300_000_000).expect("tick").expect("next epoch");
    assert_eq!((next.epoch, next.activate_at_ns), (3, 300_000_000));
}

#[test]
fn a_failed_ground_link_is_left_out_until_it_comes_back() {
    let (mut sched, a, b) = rio_to_st_petersburg();
    let first = sched.tick(0).expect("tick").expect("epoch 0 at t = 0");
    let n = first.tables.n_sats as u32;
    let before = walk(&first.tables, a, b);
    // The satellite the path leaves Rio by.
    let up = before[1];
    assert!(up < n);
    assert!(first.topology.gsl_of(a as usize).0.contains(&up));
    let p = sched
        .fail(30_000_000, FailureEvent::GslDown(up, a))
        .expect("recompute")
        .expect("published at once");
    assert!(!p.topology.gsl_of(a as usize).0.contains(&up));
    let after = walk(&p.tables, a, b);
    assert_ne!(after[1], up, "{after:?}");
    assert_eq!(after.last(), before.last());
    // Back: taken up by the first epoch computed 20 ms or more after it
    // (epoch 1 was due for computation at t = 0; epoch 2 at 100 ms).
    assert!(sched
        .fail(40_000_000, FailureEvent::GslUp(up, a))
        .expect("ok")
        .is_none());
    let e1 = sched.tick(100_000_000).expect("tick").expect("epoch 1");
    assert!(!e1.topology.gsl_of(a as usize).0.contains(&up));
    let e2 = sched.tick(200_000_000).expect("tick").expect("epoch 2");
    assert!(e2.topology.gsl_of(a as usize).0.contains(&up));
}

#[test]
fn a_restore_keeps_the_epoch_computed_ahead_and_every_node_takes_it_in_at_the_same_epoch() {
    let (e, _) = engine();
    let cfg = ScheduleConfig {
        start_s: 10.0,
        ..ScheduleConfig::default()
    };
    let mut sched = Scheduler::new(e, cfg);
    let first = sched.tick(0).expect("tick").expect("epoch 0");
    let isl = first
        .topology
        .isls()
        .next()
        .map(|(a, b, _)| (a, b))
        .expect("an ISL");
    assert!(sched
        .fail(10_000_000, FailureEvent::IslDown(isl.0, isl.1))
        .expect("recompute")
        .is_some());
    // Epoch 1 computed ahead (at 0 + lead ... now), without the link.
    assert!(sched.tick(50_000_000).expect("tick").is_none());
    let ahead = sched.pending().expect("epoch 1 computed ahead").clone();
    // Two nodes hear of the restore a few milliseconds apart: both keep
    // epoch 1 as computed (satellites installed it early) and take the
    // link back in epoch 2.
    for heard in [60_000_000u64, 63_000_000] {
        let (e, _) = engine();
        let mut s = Scheduler::new(e, cfg);
        s.tick(0).expect("tick");
        s.fail(10_000_000, FailureEvent::IslDown(isl.0, isl.1))
            .expect("recompute");
        s.tick(50_000_000).expect("tick");
        let before = Arc::clone(&s.pending().expect("computed ahead").tables);
        assert!(s
            .fail_at(heard, 60_000_000, FailureEvent::IslUp(isl.0, isl.1))
            .expect("ok")
            .is_none());
        let kept = s.pending().expect("still computed ahead");
        assert_eq!(kept.activate_at_ns, ahead.activate_at_ns);
        assert!(Arc::ptr_eq(&kept.tables, &before), "recomputed");
        let e1 = s.tick(100_000_000).expect("tick").expect("epoch 1");
        assert!(e1.topology.link_length(isl.0, isl.1).is_none());
        let e2 = s.tick(200_000_000).expect("tick").expect("epoch 2");
        assert!(e2.topology.link_length(isl.0, isl.1).is_some());
    }
    // A link that fails again before its restore takes effect stays down.
    assert!(sched
        .fail(60_000_000, FailureEvent::IslUp(isl.0, isl.1))
        .expect("ok")
        .is_none());
    sched
        .fail(70_000_000, FailureEvent::IslDown(isl.0, isl.1))
        .expect("recompute");
    for t in [100_000_000u64, 200_000_000, 300_000_000] {
        if let Some(p) = sched.tick(t).expect("tick") {
            assert!(p.topology.link_length(isl.0, isl.1).is_none(), "at {t}");
        }
    }
}

/// Notices that arrive together are applied with one computation: the
/// tables in force then, and every epoch after, are those that applying
/// them one after the other gives, whatever the mix of downs and restores
/// (a link that flaps, one that fails again before its restore is due).
#[test]
fn failures_applied_together_give_the_tables_of_applying_them_one_by_one() {
    let cfg = ScheduleConfig {
        start_s: 10.0,
        ..ScheduleConfig::default()
    };
    let started = || {
        let mut s = Scheduler::new(engine().0, cfg);
        let first = s.tick(0).expect("tick").expect("epoch 0");
        s.tick(50_000_000).expect("tick");
        (s, first)
    };
    let (_, first) = started();
    let isls: Vec<(u32, u32)> = first
        .topology
        .isls()
        .map(|(a, b, _)| (a, b))
        .step_by(97)
        .take(4)
        .collect();
    let (a, b, c, d) = (isls[0], isls[1], isls[2], isls[3]);
    let batches: Vec<Vec<(FailureEvent, u64)>> = vec![
        vec![(FailureEvent::IslDown(a.0, a.1), 55_000_000)],
        vec![
            (FailureEvent::IslDown(a.0, a.1), 40_000_000),
            (FailureEvent::IslDown(b.0, b.1), 45_000_000),
            (FailureEvent::SatelliteDown(c.0), 50_000_000),
        ],
        vec![
            (FailureEvent::IslDown(a.0, a.1), 40_000_000),
            (FailureEvent::IslUp(a.0, a.1), 45_000_000),
            (FailureEvent::IslDown(d.0, d.1), 50_000_000),
            (FailureEvent::IslUp(b.0, b.1), 52_000_000),
        ],
        vec![
            (FailureEvent::IslUp(c.0, c.1), 30_000_000),
            (FailureEvent::IslDown(c.0, c.1), 40_000_000),
        ],
        vec![(FailureEvent::IslUp(d.0, d.1), 40_000_000)],
    ];
    let now = 60_000_000;
    for events in batches {
        let (mut one_by_one, _) = started();
        let mut last = None;
        for &(ev, at) in &events {
            if let Some(p) = one_by_one.fail_at(now, at, ev).expect("recompute") {
                last = Some(p);
            }
        }
        let (mut together, _) = started();
        let batch = together.fail_all(now, &events).expect("recompute");
        assert_eq!(
            batch
                .as_ref()
                .map(|p| (p.epoch, p.activate_at_ns, &*p.tables)),
            last.as_ref()
                .map(|p| (p.epoch, p.activate_at_ns, &*p.tables)),
            "{events:?}"
        );
        for t in [100_000_000u64, 200_000_000, 300_000_000, 400_000_000] {
            let x = one_by_one.tick(t).expect("tick");
            let y = together.tick(t).expect("tick");
            assert_eq!(
                x.as_ref().map(|p| (p.epoch, &*p.tables)),
                y.as_ref().map(|p| (p.epoch, &*p.tables)),
                "{events:?} at {t}"
            );
        }
    }
}
