//! `meshplane mesh-delays`: the links of a netns mesh as the laser and
//! ground links they stand for, each direction carrying its frames with
//! the link's propagation delay at that instant.
//!
//! ```text
//! ip netns exec mp-links meshplane mesh-delays --dir /run/meshplane-mesh
//! ```
//!
//! Runs in the links namespace, where each link is a pair of veth ends
//! `w{iface_a}` and `w{iface_b}` (`links.tsv`), for the mesh's lifetime
//! (`scripts/mesh up` starts it, `down` stops it). A frame that arrives on
//! one end leaves on the other after the link's one-way delay: its length
//! over the speed of light, from the geometry the nodes use (the
//! constellation, ground stations, clock anchor, start and time scale of
//! their `[control]`), updated every control step for the middle of the
//! step. A link out of range keeps its last delay. Each direction is a
//! FIFO, as the link itself.
//!
//! The kernel here has no `netem` (nor `fq`) to delay frames with, so the
//! frames cross this process: AF_PACKET sockets on both ends, each frame
//! held from the instant the kernel stamped it entering the link until
//! it is due, on a real-time thread that aims early by its own measured
//! wake-up latency; the geometry is computed a step ahead on a thread of
//! its own, so no frame waits for it.

use crate::io::packet::PacketSocket;
use crate::mesh::delays::{
    parse_links, DelayLine, LinkDelays, MeshLink, UpdateClock, WakeLateness,
};
use anyhow::{bail, Context};
use meshplane_control::{Constellation, Engine, Failures, GroundStations, Preset};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Arguments of `meshplane mesh-delays`.
#[derive(clap::Args, Debug)]
pub struct MeshDelaysArgs {
    /// The mesh's state directory (`links.tsv`, `nodes/*.toml`), as
    /// `meshplane mesh-plan --out-dir` wrote it.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Seconds between two reports in the log.
    #[arg(long, default_value_t = 10, value_name = "SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub report_every_s: u64,
}

/// The geometry every node of the mesh shares, from one node's `[control]`.
struct Geometry {
    preset: Preset,
    stations: GroundStations,
    clock: UpdateClock,
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Reads the shared geometry from the first node file of `dir/nodes`.
fn geometry_of(dir: &Path) -> anyhow::Result<Geometry> {
    let nodes = dir.join("nodes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&nodes)
        .with_context(|| format!("reading {}", nodes.display()))?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let Some(file) = files.first() else {
        bail!("no node file in {}", nodes.display());
    };
    let text = crate::file_read::read_text(file, crate::file_read::DATA_LIMIT)
        .with_context(|| format!("reading {}", file.display()))?;
    let cfg = crate::config::NodeConfig::parse(&text, &file.display().to_string())?;
    let Some(c) = cfg.control else {
        bail!("{}: no [control]: no geometry to delay by", file.display());
    };
    let Some(anchor_ms) = c.anchor_unix_ms else {
        bail!(
            "{}: no [control] anchor_unix_ms: the nodes share no clock",
            file.display()
        );
    };
    let preset: Preset = c
        .constellation
        .parse()
        .map_err(|e| anyhow::anyhow!("{}: constellation: {e}", file.display()))?;
    let stations = match &c.ground_stations {
        None => GroundStations::top100(),
        Some(p) => GroundStations::parse_csv(
            &crate::file_read::read_text(p, crate::file_read::DATA_LIMIT)
                .with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| p.display().to_string())?,
    };
    Ok(Geometry {
        preset,
        stations,
        clock: UpdateClock::new(
            anchor_ms.saturating_mul(1_000_000),
            c.start_s,
            c.time_scale,
            c.step_ms,
        ),
    })
}

/// The interface index of `name` in this namespace.
fn ifindex(name: &str) -> anyhow::Result<i32> {
    let p = format!("/sys/class/net/{name}/ifindex");
    let text = crate::file_read::read_text(Path::new(&p), crate::file_read::SYSTEM_LIMIT)
        .with_context(|| {
        format!("no interface {name} here: run in the mesh's links namespace (ip netns exec PREFIXlinks)")
    })?;
    text.trim()
        .parse()
        .with_context(|| format!("{p}: {text:?} is not an interface index"))
}

/// One table of delays and the instant (Unix ns) it takes effect.
type Update = (u64, Vec<Option<u64>>);

/// Computes each period's delays half a period before it starts, until
/// `stop` or the receiver goes.
fn geometry_thread(
    g: Geometry,
    links: Vec<MeshLink>,
    tx: mpsc::SyncSender<Update>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let engine = Engine::new(Constellation::preset(g.preset), g.stations)?;
    let none = Failures::new();
    let mut d = LinkDelays::new(links.iter().map(|l| l.nodes));
    let clock = g.clock;
    // The period in force now first, then each next one.
    let (next, _) = clock.next_after(unix_ns());
    let mut at = next.saturating_sub(clock.period_ns);
    while !stop.load(Ordering::Relaxed) {
        let t_s = clock.geometry_s(at + clock.period_ns / 2);
        let topo = engine.topology(t_s, &none)?;
        d.update(&topo);
        if tx.send((at, d.delays_ns().to_vec())).is_err() {
            return Ok(());
        }
        at += clock.period_ns;
        let wake = at.saturating_sub(clock.period_ns / 2);
        let now = unix_ns();
        if wake > now {
            std::thread::sleep(Duration::from_nanos(wake - now));
        }
    }
    Ok(())
}

/// What the links carried since the last report.
#[derive(Default)]
struct Tally {
    frames: u64,
    /// Sum of (sent - due), signed: frames sent early count negative.
    off_ns_sum: i64,
    late_ns_max: u64,
    early_ns_max: u64,
    send_errors: u64,
    recv_errors: u64,
    truncated: u64,
    unstamped: u64,
    updates: u64,
}

/// Runs `meshplane mesh-delays`.
pub fn run(a: &MeshDelaysArgs) -> anyhow::Result<()> {
    let g = geometry_of(&a.dir)?;
    let n_sats = Constellation::preset(g.preset).len();
    let tsv = a.dir.join("links.tsv");
    let text = crate::file_read::read_text(&tsv, crate::file_read::DATA_LIMIT)
        .with_context(|| format!("reading {}", tsv.display()))?;
    let links =
        parse_links(&text, n_sats).map_err(|e| anyhow::anyhow!("{}: {e}", tsv.display()))?;
    if links.is_empty() {
        bail!("{}: no link", tsv.display());
    }
    // Socket 2*l + s is end s of link l; a frame in on one end leaves on
    // the other (index ^ 1).
    let mut socks = Vec::with_capacity(2 * links.len());
    for l in &links {
        for iface in &l.ifaces {
            let name = format!("w{iface}");
            let sock = PacketSocket::open(ifindex(&name)?).with_context(|| {
                format!("opening a packet socket on {name} (needs CAP_NET_RAW: root)")
            })?;
            socks.push(sock);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let period = Duration::from_nanos(g.clock.period_ns);
    let (tx, rx) = mpsc::sync_channel::<Update>(4);
    let geo = {
        let (links, stop) = (links.clone(), stop.clone());
        std::thread::Builder::new()
            .name("geometry".into())
            .spawn(move || geometry_thread(g, links, tx, stop))
            .context("starting the geometry thread")?
    };
    on_time();
    tracing::info!(
        links = links.len(),
        period_ms = period.as_secs_f64() * 1e3,
        "carrying the mesh's links with their propagation delay"
    );
    let result = carry(&links, &socks, &rx, &stop, a.report_every_s);
    stop.store(true, Ordering::Relaxed);
    drop(rx);
    match geo.join() {
        Ok(Err(e)) => return Err(e.context("computing the links' delays")),
        Err(_) => bail!("the geometry thread panicked"),
        Ok(Ok(())) => {}
    }
    result
}

/// Frames are due to the microsecond: the thread that carries them wakes
/// on time, ahead of the nodes (a real-time policy: it only ever waits in
/// poll(2) and sends what is due), and its timers are not coalesced.
fn on_time() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityValue, ThreadSchedulePolicy,
    };
    let fifo = ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo);
    let low = ThreadPriorityValue::try_from(10u8).map(ThreadPriority::Crossplatform);
    let rt = low.map_err(|e| format!("{e:?}")).and_then(|p| {
        set_thread_priority_and_policy(thread_native_id(), p, fifo).map_err(|e| format!("{e:?}"))
    });
    if let Err(e) = rt {
        match thread_priority::set_current_thread_priority(ThreadPriority::Max) {
            Ok(()) => tracing::warn!("link delays without a real-time policy ({e}): frames may leave late on a busy host"),
            Err(e2) => tracing::warn!("link delays at normal priority ({e}; {e2:?}): frames may leave late on a busy host"),
        }
    }
    let _ = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1));
}

/// Nanoseconds since `t0` (the delay lines' clock).
fn mono_ns(t0: Instant) -> u64 {
    t0.elapsed().as_nanos() as u64
}

/// Longest wait without looking at the clock, the stop flag or the
/// tables.
const MAX_WAIT: Duration = Duration::from_millis(50);

/// Largest frame taken (a jumbo frame and then some).
const MAX_FRAME: usize = 16 * 1024;

fn carry(
    links: &[MeshLink],
    socks: &[PacketSocket],
    rx: &mpsc::Receiver<Update>,
    stop: &AtomicBool,
    report_every_s: u64,
) -> anyhow::Result<()> {
    use rustix::event::{epoll, Timespec};
    let t0 = Instant::now();
    let mut lines: Vec<DelayLine<Vec<u8>>> = socks.iter().map(|_| DelayLine::new()).collect();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut buf = vec![0u8; MAX_FRAME];
    let mut delays: Vec<Option<u64>> = vec![None; links.len()];
    let mut pending: VecDeque<Update> = VecDeque::new();
    // epoll: a wait costs what is ready, not what is watched (a mesh has
    // a hundred link ends).
    let ep = epoll::create(epoll::CreateFlags::CLOEXEC).context("creating an epoll set")?;
    for (i, s) in socks.iter().enumerate() {
        epoll::add(
            &ep,
            s,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )
        .context("watching a link end")?;
    }
    let mut events: Vec<epoll::Event> = Vec::with_capacity(socks.len());
    let mut tally = Tally::default();
    let mut next_report = mono_ns(t0) + report_every_s * 1_000_000_000;
    let mut first = true;
    let mut lateness = WakeLateness::default();
    while !stop.load(Ordering::Relaxed) {
        loop {
            match rx.try_recv() {
                Ok(u) => pending.push_back(u),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
            }
        }
        let now_unix = unix_ns();
        while pending.front().is_some_and(|(at, _)| *at <= now_unix) {
            if let Some((_, d)) = pending.pop_front() {
                delays = d;
                tally.updates += 1;
                if first {
                    first = false;
                    log_delays(links, &delays);
                }
            }
        }
        let now = mono_ns(t0);
        // Aimed early by the usual wake-up lateness: what falls due within
        // it goes now.
        let early = lateness.early_ns();
        for (i, line) in lines.iter_mut().enumerate() {
            while let Some((due, frame)) = line.pop_due(now + early) {
                match socks[i ^ 1].send(&frame) {
                    Ok(()) => {
                        tally.frames += 1;
                        let late = now.saturating_sub(due);
                        tally.off_ns_sum += now as i64 - due as i64;
                        tally.late_ns_max = tally.late_ns_max.max(late);
                        tally.early_ns_max = tally.early_ns_max.max(due.saturating_sub(now));
                    }
                    // A link taken down (fail-isl): its frames are lost.
                    Err(_) => tally.send_errors += 1,
                }
                spare.push(frame);
            }
        }
        if now >= next_report {
            report(&tally, &lines, early);
            tally = Tally::default();
            next_report = now + report_every_s * 1_000_000_000;
        }
        // Until the next frame is due, the next table applies, or a frame
        // arrives.
        let mut wake = now + MAX_WAIT.as_nanos() as u64;
        if let Some(due) = lines.iter().filter_map(|l| l.next_due()).min() {
            wake = wake.min(due.saturating_sub(early));
        }
        if let Some((at, _)) = pending.front() {
            wake = wake.min(now + at.saturating_sub(now_unix));
        }
        let wait = wake.saturating_sub(mono_ns(t0));
        let t = Timespec {
            tv_sec: (wait / 1_000_000_000) as _,
            tv_nsec: (wait % 1_000_000_000) as _,
        };
        events.clear();
        match epoll::wait(&ep, rustix::buffer::spare_capacity(&mut events), Some(&t)) {
            // The timer: how late it woke us.
            Ok(0) if wait > 0 => lateness.observe(wake, mono_ns(t0)),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e).context("waiting for frames"),
        }
        for ev in &events {
            let i = ev.data.u64() as usize;
            if i >= socks.len() {
                continue;
            }
            loop {
                match socks[i].recv_stamped(&mut buf) {
                    Ok(Some((n, _))) if n > buf.len() => tally.truncated += 1,
                    Ok(Some((n, stamp))) => {
                        // When the frame entered the link (the kernel's
                        // stamp), not when this thread got to it.
                        let now = mono_ns(t0);
                        let at = match stamp {
                            Some(s) => now.saturating_sub(unix_ns().saturating_sub(s)),
                            None => {
                                tally.unstamped += 1;
                                now
                            }
                        };
                        let mut f = spare.pop().unwrap_or_default();
                        f.clear();
                        f.extend_from_slice(&buf[..n]);
                        let d = delays[i / 2].unwrap_or(0);
                        lines[i].push(at, d, f);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        tally.recv_errors += 1;
                        break;
                    }
                }
            }
        }
    }
    // Stopping: what is in flight still arrives.
    for (i, line) in lines.iter_mut().enumerate() {
        while let Some((_, frame)) = line.pop_due(u64::MAX) {
            let _ = socks[i ^ 1].send(&frame);
        }
    }
    report(&tally, &lines, lateness.early_ns());
    Ok(())
}

fn log_delays(links: &[MeshLink], delays: &[Option<u64>]) {
    for (l, d) in links.iter().zip(delays) {
        tracing::info!(
            link = format!("{}-{}", l.names[0], l.names[1]),
            one_way_us = d.map_or(f64::NAN, |d| d as f64 / 1e3),
            "delay at start"
        );
    }
}

fn report(t: &Tally, lines: &[DelayLine<Vec<u8>>], early_ns: u64) {
    let mean_us = if t.frames > 0 {
        t.off_ns_sum as f64 / t.frames as f64 / 1e3
    } else {
        0.0
    };
    tracing::info!(
        frames = t.frames,
        off_mean_us = format!("{mean_us:+.1}"),
        late_max_us = format!("{:.1}", t.late_ns_max as f64 / 1e3),
        early_max_us = format!("{:.1}", t.early_ns_max as f64 / 1e3),
        aim_early_us = format!("{:.1}", early_ns as f64 / 1e3),
        in_flight = lines.iter().map(DelayLine::len).sum::<usize>(),
        updates = t.updates,
        send_errors = t.send_errors,
        recv_errors = t.recv_errors,
        truncated = t.truncated,
        unstamped = t.unstamped,
        "links"
    );
}
