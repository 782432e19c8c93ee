//! What the kernel says about an interface and this process's limits, for
//! the host checks: the driver's name (`ETHTOOL_GDRVINFO`, what `ethtool
//! -i` prints, also for virtual interfaces such as veth that have no
//! device in sysfs) and the `RLIMIT_MEMLOCK` limits.

use std::os::fd::{FromRawFd, OwnedFd};

/// `SIOCETHTOOL` (linux/sockios.h).
const SIOCETHTOOL: libc::c_ulong = 0x8946;
/// `ETHTOOL_GDRVINFO` (linux/ethtool.h).
const ETHTOOL_GDRVINFO: u32 = 0x3;

/// `struct ethtool_drvinfo` (linux/ethtool.h).
#[repr(C)]
struct DrvInfo {
    cmd: u32,
    driver: [u8; 32],
    version: [u8; 32],
    fw_version: [u8; 32],
    bus_info: [u8; 32],
    erom_version: [u8; 32],
    reserved2: [u8; 12],
    n_priv_flags: u32,
    n_stats: u32,
    testinfo_len: u32,
    eedump_len: u32,
    regdump_len: u32,
}

/// `struct ifreq` with `ifr_data` (linux/if.h): name, then a pointer in
/// a union of 24 bytes.
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut DrvInfo,
    _pad: [u8; 16],
}

/// The name of the driver behind interface `iface` (`veth`, `ixgbe`,
/// `mlx5_core`, ...), `None` when the kernel does not say.
pub fn driver_name(iface: &str) -> Option<String> {
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ || iface.contains('\0') {
        return None;
    }
    // SAFETY: plain value arguments; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a socket just opened and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = DrvInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        version: [0; 32],
        fw_version: [0; 32],
        bus_info: [0; 32],
        erom_version: [0; 32],
        reserved2: [0; 12],
        n_priv_flags: 0,
        n_stats: 0,
        testinfo_len: 0,
        eedump_len: 0,
        regdump_len: 0,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut info,
        _pad: [0; 16],
    };
    req.name[..iface.len()].copy_from_slice(iface.as_bytes());
    // SAFETY: req is a valid ifreq whose NUL-terminated name fits and whose
    // data points at a drvinfo that outlives the call; the kernel writes
    // at most sizeof(struct ethtool_drvinfo) there.
    let ret = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            SIOCETHTOOL as _,
            &mut req,
        )
    };
    if ret != 0 {
        return None;
    }
    let end = info.driver.iter().position(|&b| b == 0).unwrap_or(32);
    let name = String::from_utf8_lossy(&info.driver[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// The `RLIMIT_MEMLOCK` soft and hard limits in bytes (`u64::MAX` =
/// unlimited); `None` if they cannot be read.
pub fn memlock_limits() -> Option<(u64, u64)> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut r) } != 0 {
        return None;
    }
    let v = |x: libc::rlim_t| {
        if x == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            x
        }
    };
    Some((v(r.rlim_cur), v(r.rlim_max)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_impossible_name_has_no_driver_and_limits_read() {
        assert_eq!(driver_name("no-such-if0"), None);
        assert_eq!(driver_name(""), None);
        assert_eq!(driver_name("a-name-far-too-long-for-linux"), None);
        let (soft, hard) = memlock_limits().expect("getrlimit");
        assert!(soft <= hard);
    }
}
