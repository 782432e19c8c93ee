//! [`PacketSocket`]: a raw AF_PACKET socket on one interface, whole
//! Ethernet frames in and out, non-blocking. Not a worker's port: the
//! netns mesh's link emulator (`meshplane mesh-delays`) carries frames
//! between the two ends of a link with it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `PACKET_IGNORE_OUTGOING` (Linux 4.20): the socket does not see the
/// frames sent on its interface.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// `SO_TIMESTAMPNS` (`SO_TIMESTAMPNS_OLD`: a `timespec` of the native
/// `time_t`, 64-bit here), as asm-generic and x86 number it; also the
/// control message's type (`SCM_TIMESTAMPNS`).
const SO_TIMESTAMPNS: libc::c_int = 35;

/// A raw socket bound to one interface, every EtherType.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

/// Sets the boolean socket option `name` of `level` on `fd`.
fn set_flag(fd: &OwnedFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: `one` is a valid c_int for the option's length.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl PacketSocket {
    /// Opens a socket on interface `ifindex` that receives every frame
    /// arriving on it (not the ones sent on it) and sends whole frames.
    pub fn open(ifindex: i32) -> io::Result<Self> {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) with constant arguments; the descriptor it
        // returns is ours alone and owned from here on.
        let fd = unsafe {
            let r = check(libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(all),
            ))?;
            OwnedFd::from_raw_fd(r)
        };
        set_flag(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING)?;
        // Each frame's arrival time (the kernel's, as the interface took
        // it), for `recv_stamped`.
        set_flag(&fd, libc::SOL_SOCKET, SO_TIMESTAMPNS)?;
        // SAFETY: an all-zero sockaddr_ll is a valid value; the fields
        // that matter are set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a sockaddr_ll of the length given.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })?;
        Ok(PacketSocket { fd })
    }

    /// Receives one frame into `buf` (its whole length, which may exceed
    /// the buffer's), with its arrival time on the interface (Unix ns, the
    /// kernel's receive timestamp) when the kernel gave one; `Ok(None)`
    /// when none is waiting.
    pub fn recv_stamped(&self, buf: &mut [u8]) -> io::Result<Option<(usize, Option<u64>)>> {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // Room for one SCM_TIMESTAMPNS (a timespec), aligned for cmsghdr.
        let mut control = [0u64; 8];
        // SAFETY: an all-zero msghdr is a valid value; its pointers are
        // set below to `iov` and `control`, which outlive the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        // SAFETY: `msg` points at a writable buffer and control area of
        // the lengths it gives.
        let r = unsafe {
            libc::recvmsg(
                self.fd.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
        let mut stamp = None;
        // SAFETY: the kernel filled `msg`'s control area (msg_controllen
        // says how much); CMSG_FIRSTHDR/CMSG_NXTHDR walk it within that
        // length, and a SCM_TIMESTAMPNS message carries one timespec
        // (read unaligned).
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                    let ts: libc::timespec =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                    stamp = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        Ok(Some((r as usize, stamp)))
    }

    /// Sends `frame` (a whole Ethernet frame) on the interface.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: `frame` is readable for its length.
        let r = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
