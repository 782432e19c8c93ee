//! A node's ports over AF_XDP, as its configuration names them: each
//! port's `iface`, `queues`, `mode` and ring sizes.
//!
//! Per interface: one redirect program with its XSKMAP. Per worker: one
//! UMEM shared by that worker's sockets on every port (`XDP_SHARED_UMEM`),
//! so a frame received on one port is sent on another without a copy. A
//! port whose socket cannot share it (a mode that differs from the first
//! socket's) gets its own UMEM, and frames crossing over to it are copied.

use std::ffi::CString;
use std::sync::Arc;

use super::bpf::{XdpAttachMode, XdpAttachment};
use super::error::AfXdpError;
use super::port::AfXdpPort;
use super::socket::{BindMode, RingSizes, Xsk};
use super::umem::{chunk_size_for, frame_room, Umem, FRAME_SIZE, MAX_CHUNK};
use crate::config::{NodeConfig, PortConfig, XdpMode};
use crate::frame::BURST;

/// The index of interface `iface` in this network namespace.
pub fn ifindex(iface: &str) -> Result<u32, AfXdpError> {
    let c = CString::new(iface).map_err(|_| AfXdpError::NoSuchInterface(iface.into()))?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(AfXdpError::NoSuchInterface(iface.into()));
    }
    Ok(i)
}

/// RX queues of `iface` as sysfs lists them (None if it cannot tell).
pub fn rx_queues(iface: &str) -> Option<u32> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{iface}/queues")).ok()?;
    let n = dir
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
        .count();
    (n > 0).then_some(n as u32)
}

/// What one port resolves to before sockets open.
struct PortPlan<'a> {
    cfg: &'a PortConfig,
    iface: String,
    ifindex: u32,
    queues: Vec<u32>,
    sizes: RingSizes,
    xdp: Arc<XdpAttachment>,
}

/// The AF_XDP sockets of one node: for each worker, one socket per port.
#[derive(Debug)]
pub struct AfXdpNode {
    workers: Vec<Vec<AfXdpPort>>,
}

impl AfXdpNode {
    /// Attaches the redirect program to every port's interface and opens
    /// `workers` sockets per port (worker `w` on the port's `w`-th queue),
    /// each worker's sockets sharing one UMEM.
    pub fn open(cfg: &NodeConfig, workers: usize) -> Result<Self, AfXdpError> {
        let lay = layout(cfg);
        let workers = workers.max(1);
        let mut plans = Vec::with_capacity(cfg.ports.len());
        for p in &cfg.ports {
            let iface = p.iface.clone().ok_or_else(|| {
                AfXdpError::Config(format!(
                    "node {}: port {:?} has no `iface` (the interface AF_XDP binds to)",
                    cfg.name, p.name
                ))
            })?;
            let ifindex = ifindex(&iface)?;
            warn_if_narrower(p, &iface);
            let queues: Vec<u32> = match &p.afxdp.queues {
                Some(q) => q.clone(),
                None => (0..workers as u32).collect(),
            };
            if queues.len() < workers {
                return Err(AfXdpError::Config(format!(
                    "port {:?}: {workers} workers need {workers} queues, `queues` lists {}",
                    p.name,
                    queues.len()
                )));
            }
            let count = rx_queues(&iface);
            if let Some(count) = count {
                if let Some(&q) = queues[..workers].iter().find(|&&q| q >= count) {
                    return Err(AfXdpError::BadQueue {
                        iface,
                        queue: q,
                        count,
                    });
                }
            }
            let slots = count
                .unwrap_or(0)
                .max(queues.iter().max().map_or(1, |m| m + 1));
            let xdp = Arc::new(XdpAttachment::attach(
                &iface,
                ifindex,
                slots,
                p.afxdp.mode == XdpMode::Zerocopy,
            )?);
            tracing::info!(
                port = %p.name,
                iface = %iface,
                "XDP redirect program attached in {} mode",
                xdp.mode()
            );
            plans.push(PortPlan {
                cfg: p,
                iface,
                ifindex,
                queues,
                sizes: RingSizes {
                    rx: p.afxdp.rx_ring,
                    tx: p.afxdp.tx_ring,
                },
                xdp,
            });
        }

        let frames = umem_frames(cfg, workers, plans.iter().map(|p| p.sizes))?;
        let mut all = Vec::with_capacity(workers);
        for w in 0..workers {
            all.push(open_worker(&plans, w, frames, lay, cfg.io.hugepages)?);
        }
        Ok(AfXdpNode { workers: all })
    }

    /// The sockets of every worker (index = worker, then `PortId`).
    pub fn workers(&self) -> &[Vec<AfXdpPort>] {
        &self.workers
    }

    /// Hands out the ports: one `Vec` per worker, in port order.
    pub fn into_workers(self) -> Vec<Vec<AfXdpPort>> {
        self.workers
    }
}

/// Frames a UMEM needs for the given ports so that no fill ring runs dry
/// while others hold frames: each port's fill and RX rings full (a
/// receiving port), its TX ring full (a sending port), plus bursts in
/// flight in the worker.
fn frames_for(sizes: impl Iterator<Item = RingSizes>) -> u32 {
    let mut n = 0u32;
    let mut ports = 0u32;
    for s in sizes {
        n = n
            .saturating_add(s.rx.saturating_mul(2))
            .saturating_add(s.tx);
        ports += 1;
    }
    n.saturating_add(ports * 8 * BURST as u32)
}

/// Frames of each worker's UMEM: `[io] buffers` split evenly over the
/// workers, else [`frames_for`] the ports. Refused when a worker's share
/// cannot hold one burst per port; a share below what the rings hold is
/// allowed, with a warning (a fill ring may then run dry under load).
fn umem_frames(
    cfg: &NodeConfig,
    workers: usize,
    sizes: impl Iterator<Item = RingSizes> + Clone,
) -> Result<u32, AfXdpError> {
    let rings = frames_for(sizes.clone());
    let Some(buffers) = cfg.io.buffers else {
        return Ok(rings);
    };
    let w = u32::try_from(workers.max(1)).unwrap_or(u32::MAX);
    let share = buffers / w;
    let least = u32::try_from(sizes.count().max(1) * BURST).unwrap_or(u32::MAX);
    if share < least {
        return Err(AfXdpError::Config(format!(
            "node {}: [io] buffers {buffers} gives each of {w} worker(s) {share} UMEM frames, \
             fewer than one burst per port ({least}): set [io] buffers >= {}",
            cfg.name,
            least.saturating_mul(w)
        )));
    }
    if share < rings {
        tracing::warn!(
            "[io] buffers {buffers} gives each of {w} worker(s) {share} UMEM frames, fewer than \
             its rings hold ({rings}): a fill ring may run dry under load (set [io] buffers >= {} \
             or leave it unset)",
            rings.saturating_mul(w)
        );
    }
    Ok(share)
}

/// Warns when `iface`'s MTU is below the port's: the kernel neither
/// delivers nor sends longer frames, whatever the port admits.
fn warn_if_narrower(p: &PortConfig, iface: &str) {
    let path = format!("/sys/class/net/{iface}/mtu");
    let Some(mtu) =
        crate::file_read::read_text(std::path::Path::new(&path), crate::file_read::SYSTEM_LIMIT)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    else {
        return;
    };
    if mtu < u32::from(p.mtu) {
        tracing::warn!(
            port = %p.name,
            "interface {iface} has MTU {mtu}, below the port's mtu {}: frames longer than \
             {mtu} B of payload are dropped by the kernel; raise it with `ip link set {iface} \
             mtu {}` or set the port's mtu to {mtu}",
            p.mtu,
            p.mtu
        );
    }
}

/// Opens worker `w`'s socket on every port, sharing a UMEM of `frames`
/// chunks of `chunk` bytes.
fn open_worker(
    plans: &[PortPlan<'_>],
    w: usize,
    frames: u32,
    lay: Layout,
    hugepages: bool,
) -> Result<Vec<AfXdpPort>, AfXdpError> {
    let umem = Umem::with_jumbo(frames, lay.chunk, hugepages, lay.slots, lay.max_frame)?;
    // The socket that registered `umem`, its descriptor and bind mode.
    let mut owner: Option<(i32, BindMode)> = None;
    let mut ports = Vec::with_capacity(plans.len());
    for p in plans {
        let queue = p.queues[w];
        let wanted = p.cfg.afxdp.mode;
        let shared = match owner {
            Some((fd, mode)) if compatible(wanted, mode) => {
                match Xsk::open(&umem, Some(fd), &p.iface, p.ifindex, queue, p.sizes, mode) {
                    Ok(x) => Some((x, mode)),
                    Err(e) => {
                        tracing::warn!(
                            port = %p.cfg.name,
                            "cannot share worker {w}'s UMEM ({e}); the port gets its own and \
                             frames crossing to it are copied"
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let (xsk, mode, port_umem) = match shared {
            Some((x, mode)) => (x, mode, umem.clone()),
            None if owner.is_none() => {
                let (x, mode) = bind_first(&umem, p, queue)?;
                owner = Some((x.fd(), mode));
                (x, mode, umem.clone())
            }
            None => {
                let own = Umem::with_jumbo(
                    frames_for(std::iter::once(p.sizes)),
                    lay.chunk,
                    hugepages,
                    lay.slots,
                    lay.max_frame,
                )?;
                let (x, mode) = bind_first(&own, p, queue)?;
                (x, mode, own)
            }
        };
        tracing::info!(
            port = %p.cfg.name,
            iface = %p.iface,
            queue,
            worker = w,
            "AF_XDP socket bound in {mode} mode (XDP {}, UMEM {} frames of {} B{})",
            p.xdp.mode(),
            port_umem.frames(),
            port_umem.chunk_size(),
            if port_umem.hugepages() { " on hugepages" } else { "" }
        );
        ports.push(
            AfXdpPort::new(
                xsk,
                port_umem,
                mode,
                p.cfg.name.clone(),
                queue,
                p.xdp.clone(),
            )?
            .with_max_frame(p.cfg.max_frame()),
        );
    }
    Ok(ports)
}

/// Whether a port asking for `wanted` can share a UMEM bound in `mode`.
fn compatible(wanted: XdpMode, mode: BindMode) -> bool {
    match wanted {
        XdpMode::Auto => true,
        XdpMode::Zerocopy => mode == BindMode::ZeroCopy,
        XdpMode::Copy => mode == BindMode::Copy,
    }
}

/// Registers `umem` with a new socket for `p` and binds it: zero-copy
/// when asked for or (auto) when the program runs natively and the driver
/// takes it, else copy.
fn bind_first(umem: &Umem, p: &PortPlan<'_>, queue: u32) -> Result<(Xsk, BindMode), AfXdpError> {
    let open = |mode| Xsk::open(umem, None, &p.iface, p.ifindex, queue, p.sizes, mode);
    match p.cfg.afxdp.mode {
        XdpMode::Copy => Ok((open(BindMode::Copy)?, BindMode::Copy)),
        XdpMode::Zerocopy => match open(BindMode::ZeroCopy) {
            Ok(x) => Ok((x, BindMode::ZeroCopy)),
            Err(AfXdpError::Sys { source, .. }) => Err(AfXdpError::NoZeroCopy {
                iface: p.iface.clone(),
                queue,
                msg: source.to_string(),
            }),
            Err(e) => Err(e),
        },
        XdpMode::Auto if p.xdp.mode() == XdpAttachMode::Generic => {
            Ok((open(BindMode::Copy)?, BindMode::Copy))
        }
        XdpMode::Auto => match open(BindMode::ZeroCopy) {
            Ok(x) => Ok((x, BindMode::ZeroCopy)),
            Err(AfXdpError::Sys { source, .. }) => {
                tracing::info!(
                    iface = %p.iface,
                    queue,
                    "no zero-copy on this driver ({source}): binding in copy mode"
                );
                Ok((open(BindMode::Copy)?, BindMode::Copy))
            }
            Err(e) => Err(e),
        },
    }
}

/// The largest frame an AF_XDP port takes in the default 2 KiB chunks: a
/// chunk less the kernel's RX headroom and the tailroom the stages'
/// encapsulation needs. A larger `[io] mtu` gets larger chunks.
pub const MAX_FRAME: usize = frame_room(FRAME_SIZE);

/// Jumbo slots per UMEM when the node's frames outgrow a page-sized
/// chunk: a burst per port in flight many times over (about 3 MiB at
/// 12 KiB a slot).
pub const JUMBO_SLOTS: u32 = 256;

/// How a node's UMEMs are laid out for its ports' MTUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    /// Bytes per chunk: large enough that a frame the MTUs admit fits one,
    /// up to a page.
    chunk: usize,
    /// Jumbo slots (0 when every frame fits a chunk): frames longer than a
    /// page arrive over several chunks (multi-buffer AF_XDP) and are
    /// gathered into a slot.
    slots: u32,
    /// The longest frame a slot holds.
    max_frame: usize,
}

/// The UMEM layout for the node's port MTUs: chunks sized so that the
/// kernel, which drops frames longer than a chunk holds unless the socket
/// is multi-buffer (in copy mode it counts them in `rx_dropped`), passes
/// every frame the MTUs admit; beyond a page, page chunks and jumbo slots.
fn layout(cfg: &NodeConfig) -> Layout {
    let need = cfg.max_frame();
    let chunk = chunk_size_for(need);
    if chunk <= MAX_CHUNK {
        return Layout {
            chunk,
            slots: 0,
            max_frame: need,
        };
    }
    Layout {
        chunk: MAX_CHUNK,
        slots: JUMBO_SLOTS,
        max_frame: need,
    }
}

#[cfg(test)]
mod mtu_tests {
    use super::*;
    use crate::frame::Frame;
    use crate::io::afxdp::umem::RX_HEADROOM;

    /// `[io] mtu` and every port at its default for it, as a file that
    /// says only `[io] mtu` gets.
    fn set_mtu(cfg: &mut NodeConfig, mtu: u16) {
        cfg.io.mtu = mtu;
        for p in &mut cfg.ports {
            p.mtu = cfg.io.default_port_mtu(p.is_lan());
        }
    }

    #[test]
    fn the_umem_chunk_grows_with_the_mtu_in_powers_of_two() {
        let mut cfg = crate::chain::default_chain().expect("chain")[0]
            .node
            .clone();
        for (mtu, chunk) in [(1500, 2048), (1662, 2048), (1663, 4096), (3710, 4096)] {
            set_mtu(&mut cfg, mtu);
            let lay = layout(&cfg);
            assert_eq!((lay.chunk, lay.slots), (chunk, 0), "mtu {mtu}");
            assert!(frame_room(chunk) >= cfg.max_frame(), "mtu {mtu}");
        }
        // The largest [io] mtu each chunk holds at the default port MTUs.
        let room = |chunk| frame_room(chunk) - 18 - 80;
        assert_eq!((room(FRAME_SIZE), room(MAX_CHUNK)), (1662, 3710));
    }

    #[test]
    fn a_jumbo_mtu_takes_page_chunks_and_jumbo_slots() {
        let mut cfg = crate::chain::default_chain().expect("chain")[0]
            .node
            .clone();
        set_mtu(&mut cfg, 3711);
        assert_eq!(layout(&cfg).slots, JUMBO_SLOTS);
        set_mtu(&mut cfg, 9000);
        let lay = layout(&cfg);
        assert_eq!(
            (lay.chunk, lay.slots, lay.max_frame),
            (4096, JUMBO_SLOTS, 9098)
        );
        let u = Umem::with_jumbo(64, lay.chunk, false, 4, lay.max_frame).expect("umem");
        // 256 + 9098 + 32 B rounded up to whole chunks.
        assert_eq!(u.jumbo_size(), 3 * 4096);
        assert_eq!(u.registered_len(), 64 * 4096 + 4 * 3 * 4096);
        let mut f = u.alloc_jumbo().expect("a slot");
        assert_eq!(u.free_jumbo(), 3);
        assert!(f.append(9098));
        assert_eq!(f.tailroom(), 3 * 4096 - RX_HEADROOM - 9098);
        f.data_mut().fill(7);
        // Sent as one descriptor per chunk it touches, all but the last
        // continued.
        let mut d = [libc::xdp_desc {
            addr: 0,
            len: 0,
            options: 0,
        }; 8];
        let n = u.descs(&f, &mut d);
        assert_eq!(n, 3);
        assert_eq!(d[..n].iter().map(|d| d.len).sum::<u32>(), 9098);
        assert_eq!(d[0].len as usize, 4096 - RX_HEADROOM);
        assert!(d[..2].iter().all(|d| d.options == libc::XDP_PKT_CONTD) && d[2].options == 0);
        for w in d[..n].windows(2) {
            assert_eq!(w[0].addr + u64::from(w[0].len), w[1].addr, "contiguous");
            assert_eq!(w[1].addr % 4096, 0, "each in its own chunk");
        }
        std::mem::forget(f);
        u.frames_in(1);
        // The slot is free again after the last completion, not before.
        for (i, x) in d[..n].iter().enumerate() {
            assert_eq!(u.complete(x.addr), None);
            assert_eq!(u.free_jumbo(), if i + 1 == n { 4 } else { 3 });
        }
        // A frame dropped from a slot goes back to the slots.
        let f = u.alloc_jumbo().expect("a slot");
        drop(f);
        assert_eq!((u.free_jumbo(), u.free_frames()), (4, 64));
    }
}
