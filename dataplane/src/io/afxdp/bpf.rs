//! The XDP side of AF_XDP through the raw `bpf(2)` system call: an XSKMAP,
//! a six-instruction redirect program assembled here, and a BPF link that
//! attaches it to an interface and detaches it when the last descriptor of
//! the link closes (at the latest when the process exits).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::error::AfXdpError;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;

const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;

/// `XDP_PASS`: the action when no socket is bound on the RX queue.
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// `union bpf_attr` for `BPF_MAP_CREATE` (no padding: all `u32`).
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

/// `union bpf_attr` for `BPF_MAP_*_ELEM` (no padding).
#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

/// `union bpf_attr` for `BPF_PROG_LOAD` (fields laid out without padding).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` (no padding).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    code: u8,
    /// `dst_reg` in the low nibble, `src_reg` in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

impl BpfInsn {
    /// An instruction from its opcode, registers, offset and immediate.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        BpfInsn {
            code,
            regs: (dst & 0xf) | (src << 4),
            off,
            imm,
        }
    }
}

/// The redirect program: every frame goes to the AF_XDP socket bound on
/// its RX queue, or up the kernel stack when there is none.
///
/// ```c
/// return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
/// ```
pub fn redirect_program(map_fd: RawFd) -> [BpfInsn; 6] {
    [
        // r2 = *(u32 *)(r1 + offsetof(struct xdp_md, rx_queue_index))
        BpfInsn::new(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // r1 = map (ld_imm64 with a map fd: two instruction slots)
        BpfInsn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        BpfInsn::new(0, 0, 0, 0, 0),
        // r3 = XDP_PASS (the action when the map has no socket for the queue)
        BpfInsn::new(0xb7, 3, 0, 0, XDP_PASS),
        // r0 = bpf_redirect_map(r1, r2, r3)
        BpfInsn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // return r0
        BpfInsn::new(0x95, 0, 0, 0, 0),
    ]
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a live, initialised repr(C) bpf_attr prefix of the
    // size passed; the kernel reads (and for some commands writes) only
    // within it. Pointers inside it are valid for the call's duration.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this descriptor to us; nobody else owns it.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

fn name16(s: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    for (d, b) in n.iter_mut().zip(s.bytes().take(15)) {
        *d = b;
    }
    n
}

/// Creates an XSKMAP with `entries` slots (one per RX queue).
pub fn create_xskmap(entries: u32) -> Result<OwnedFd, AfXdpError> {
    let mut a = MapCreateAttr {
        map_type: BPF_MAP_TYPE_XSKMAP,
        key_size: 4,
        value_size: 4,
        max_entries: entries.max(1),
        map_name: name16("meshplane_xsks"),
        ..Default::default()
    };
    sys_bpf(BPF_MAP_CREATE, &mut a)
        .map(owned)
        .map_err(|e| AfXdpError::from_io("creating the XSKMAP (bpf BPF_MAP_CREATE)", e))
}

/// Puts socket `sock` into slot `queue` of `map`.
pub fn xskmap_set(map: &OwnedFd, queue: u32, sock: RawFd) -> io::Result<()> {
    let (key, value) = (queue, sock as u32);
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        value: &value as *const u32 as u64,
        ..Default::default()
    };
    sys_bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
}

/// Empties slot `queue` of `map` (frames of that queue go to the kernel stack).
pub fn xskmap_clear(map: &OwnedFd, queue: u32) -> io::Result<()> {
    let key = queue;
    let mut a = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        key: &key as *const u32 as u64,
        ..Default::default()
    };
    sys_bpf(BPF_MAP_DELETE_ELEM, &mut a).map(|_| ())
}

/// Loads the redirect program over `map`; on refusal the error carries the
/// verifier's log.
pub fn load_redirect_program(map: &OwnedFd) -> Result<OwnedFd, AfXdpError> {
    load_xdp_program(&redirect_program(map.as_raw_fd()))
}

/// Loads `insns` as an XDP program; on refusal the error carries the
/// verifier's log.
pub fn load_xdp_program(insns: &[BpfInsn]) -> Result<OwnedFd, AfXdpError> {
    let license = CString::new("Dual MIT/GPL").expect("no NUL in a literal");
    let attr = |log: &mut [u8]| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name16("meshplane_xsk"),
        expected_attach_type: BPF_XDP,
        ..Default::default()
    };
    let mut a = attr(&mut []);
    match sys_bpf(BPF_PROG_LOAD, &mut a) {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            if matches!(first.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES)) {
                return Err(AfXdpError::Permission {
                    what: "loading the XDP program (bpf BPF_PROG_LOAD)".into(),
                });
            }
            // Again with a log buffer, so the error says what the verifier saw.
            let mut log = vec![0u8; 64 * 1024];
            let mut a = attr(&mut log);
            let source = match sys_bpf(BPF_PROG_LOAD, &mut a) {
                Ok(fd) => return Ok(owned(fd)),
                Err(e) => e,
            };
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            Err(AfXdpError::ProgLoad {
                source,
                log: String::from_utf8_lossy(&log[..end]).trim_end().to_string(),
            })
        }
    }
}

/// Where an XDP program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// In the driver, before an skb exists (needed for zero-copy).
    Native,
    /// Generic (SKB) mode: works on any interface, after skb allocation.
    Generic,
}

impl std::fmt::Display for XdpAttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XdpAttachMode::Native => "native",
            XdpAttachMode::Generic => "generic (SKB)",
        })
    }
}

/// Attaches `prog` to `ifindex` through a BPF link in `mode`.
pub fn link_xdp(prog: &OwnedFd, ifindex: u32, mode: XdpAttachMode) -> io::Result<OwnedFd> {
    let mut a = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: match mode {
            XdpAttachMode::Native => XDP_FLAGS_DRV_MODE,
            XdpAttachMode::Generic => XDP_FLAGS_SKB_MODE,
        },
    };
    sys_bpf(BPF_LINK_CREATE, &mut a).map(owned)
}

/// The redirect program attached to one interface: its XSKMAP, the
/// program and the link. Dropping it closes the link, which detaches the
/// program (the kernel also does it when the process exits).
#[derive(Debug)]
pub struct XdpAttachment {
    iface: String,
    ifindex: u32,
    mode: XdpAttachMode,
    map: OwnedFd,
    _prog: OwnedFd,
    _link: OwnedFd,
}

impl XdpAttachment {
    /// Loads the program for `iface` (`queues` XSKMAP slots) and attaches
    /// it natively, falling back to generic mode unless `native_only`.
    pub fn attach(
        iface: &str,
        ifindex: u32,
        queues: u32,
        native_only: bool,
    ) -> Result<Self, AfXdpError> {
        let map = create_xskmap(queues)?;
        let prog = load_redirect_program(&map)?;
        let busy = |e: &io::Error| e.raw_os_error() == Some(libc::EBUSY);
        let perm =
            |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES));
        let (link, mode) = match link_xdp(&prog, ifindex, XdpAttachMode::Native) {
            Ok(l) => (l, XdpAttachMode::Native),
            Err(e) if busy(&e) => {
                return Err(AfXdpError::XdpBusy {
                    iface: iface.into(),
                    msg: e.to_string(),
                })
            }
            Err(e) if perm(&e) => {
                return Err(AfXdpError::Permission {
                    what: format!("{iface}: attaching the XDP program (bpf BPF_LINK_CREATE)"),
                })
            }
            Err(e) if native_only => {
                return Err(AfXdpError::NoNativeXdp {
                    iface: iface.into(),
                    msg: e.to_string(),
                })
            }
            Err(native) => match link_xdp(&prog, ifindex, XdpAttachMode::Generic) {
                Ok(l) => {
                    tracing::warn!(
                        iface,
                        "native XDP refused ({native}: a driver without it, or an MTU \
                         too large for single-buffer XDP, as on veth above about 3.5 KB): \
                         using generic (SKB) XDP, slower"
                    );
                    (l, XdpAttachMode::Generic)
                }
                Err(e) if busy(&e) => {
                    return Err(AfXdpError::XdpBusy {
                        iface: iface.into(),
                        msg: e.to_string(),
                    })
                }
                Err(e) => {
                    return Err(AfXdpError::from_io(
                        format!("{iface}: attaching the XDP program natively ({native}) and in generic mode"),
                        e,
                    ))
                }
            },
        };
        Ok(XdpAttachment {
            iface: iface.into(),
            ifindex,
            mode,
            map,
            _prog: prog,
            _link: link,
        })
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Native or generic.
    pub fn mode(&self) -> XdpAttachMode {
        self.mode
    }

    /// Steers queue `queue` to socket `fd`.
    pub fn register(&self, queue: u32, fd: RawFd) -> Result<(), AfXdpError> {
        xskmap_set(&self.map, queue, fd).map_err(|e| {
            AfXdpError::from_io(
                format!(
                    "{}: putting the queue {queue} socket into the XSKMAP",
                    self.iface
                ),
                e,
            )
        })
    }

    /// Sends queue `queue` back to the kernel stack.
    pub fn unregister(&self, queue: u32) {
        let _ = xskmap_clear(&self.map, queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_program_shows_the_verifier_log() {
        // `return r0` with r0 never written: the verifier must refuse it.
        let bad = [BpfInsn::new(0x95, 0, 0, 0, 0)];
        match load_xdp_program(&bad) {
            Err(AfXdpError::Permission { .. }) => {
                eprintln!("SKIPPED: loading BPF programs needs root or CAP_BPF + CAP_NET_ADMIN")
            }
            Err(e @ AfXdpError::ProgLoad { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("verifier log:") && msg.contains("R0 !read_ok"),
                    "{msg}"
                );
            }
            Err(e) => panic!("unexpected error: {e}"),
            Ok(_) => panic!("the verifier accepted a program returning an unset register"),
        }
    }

    #[test]
    fn redirect_program_encodes_as_the_kernel_expects() {
        let p = redirect_program(7);
        // SAFETY: BpfInsn is repr(C), 8 bytes without padding.
        let bytes: [u8; 48] = unsafe { std::mem::transmute(p) };
        assert_eq!(&bytes[0..8], &[0x61, 0x12, 16, 0, 0, 0, 0, 0]);
        assert_eq!(&bytes[8..16], &[0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(&bytes[24..32], &[0xb7, 0x03, 0, 0, 2, 0, 0, 0]);
        assert_eq!(&bytes[32..40], &[0x85, 0, 0, 0, 51, 0, 0, 0]);
        assert_eq!(&bytes[40..48], &[0x95, 0, 0, 0, 0, 0, 0, 0]);
    }
}
