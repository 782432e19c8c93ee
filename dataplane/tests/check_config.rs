//! `meshplane check-config` refuses what a node could not use, with the
//! file, the line, the field and why, and exits 1; what it accepts, a node
//! runs with. Each case is a one-line edit of a good configuration.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_meshplane");

const GOOD: &str = r#"[node]
name = "gw-a"
role = "gateway"

[[ports]]
name = "lan0"
mac = "02:00:00:00:00:01"

[[ports]]
name = "up0"
mac = "02:00:00:00:00:02"

[[sa]]
spi = 4097
dir = "out"
aead = "aes-128-gcm"
key = "000102030405060708090a0b0c0d0e0f01020304"
tunnel_src = "192.0.2.1"
tunnel_dst = "192.0.2.2"

[[fec]]
prefix = "10.2.0.0/16"
sa = 4097
label = 1002
port = "up0"
next_hop_mac = "02:00:00:00:00:10"

[[lfib]]
label = 1002
action = "swap"
out_label = 1003
port = "up0"
next_hop_mac = "02:00:00:00:00:20"

[[lfib]]
label = 1005
action = "pop"

[[deliver]]
prefix = "10.1.0.0/16"
port = "lan0"
next_hop_mac = "02:00:00:00:00:30"
"#;

fn dir() -> PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mp-check-config-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Runs check-config on `bytes` written to a file called `name` (in a
/// directory of its own: tests run in parallel): (exit code, stderr).
fn check_bytes(name: &str, bytes: &[u8]) -> (Option<i32>, String) {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = dir().join(N.fetch_add(1, Ordering::Relaxed).to_string());
    std::fs::create_dir_all(&d).expect("temp dir");
    let path = d.join(name);
    std::fs::write(&path, bytes).expect("write config");
    check_path(&path)
}

fn check_path(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(path)
        .output()
        .expect("run meshplane");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `GOOD` with `from` replaced by `to` must be refused at the line holding
/// `to`'s last line, with `why` in the message.
fn refused(from: &str, to: &str, why: &str) {
    refused_at(from, to, to.lines().last().unwrap_or(to), why)
}

/// Refused at the first line holding `at`.
fn refused_at(from: &str, to: &str, at: &str, why: &str) {
    assert!(GOOD.contains(from), "{from:?} not in the base config");
    let text = GOOD.replacen(from, to, 1);
    let line = text
        .lines()
        .position(|l| l.contains(at))
        .expect("edited line")
        + 1;
    let (code, err) = check_bytes("n.toml", text.as_bytes());
    assert_eq!(code, Some(1), "{to:?} accepted: {err}");
    let want = format!("n.toml:{line}: ");
    assert!(
        err.contains(&want) && err.contains(why),
        "{to:?}: want {want:?} and {why:?}, got: {err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

#[test]
fn the_base_config_is_accepted() {
    let (code, err) = check_bytes("good.toml", GOOD.as_bytes());
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn port_macs_must_be_unicast_and_distinct() {
    let lan = "mac = \"02:00:00:00:00:01\"";
    refused(
        lan,
        "mac = \"ff:ff:ff:ff:ff:ff\"",
        "port \"lan0\" mac ff:ff:ff:ff:ff:ff is the broadcast address",
    );
    refused(
        lan,
        "mac = \"01:00:5e:00:00:01\"",
        "port \"lan0\" mac 01:00:5e:00:00:01 is a multicast (group) address",
    );
    refused(
        lan,
        "mac = \"00:00:00:00:00:00\"",
        "port \"lan0\" mac 00:00:00:00:00:00 is the all-zero address",
    );
    refused(
        "mac = \"02:00:00:00:00:02\"",
        "mac = \"02:00:00:00:00:01\" # same as lan0",
        "port \"up0\" mac 02:00:00:00:00:01 is already port \"lan0\"'s: each port needs its own MAC (first defined at line 7)",
    );
    refused(
        "mac = \"02:00:00:00:00:02\"",
        "mac = \"02:00:00:00:00:02\"\npeer_mac = \"33:33:00:00:00:01\"",
        "port \"up0\" peer_mac 33:33:00:00:00:01 is a multicast (group) address",
    );
}

#[test]
fn next_hop_macs_must_be_unicast() {
    refused(
        "next_hop_mac = \"02:00:00:00:00:10\"",
        "next_hop_mac = \"00:00:00:00:00:00\"",
        "fec 10.2.0.0/16 next_hop_mac 00:00:00:00:00:00 is the all-zero address",
    );
    refused(
        "next_hop_mac = \"02:00:00:00:00:20\"",
        "next_hop_mac = \"03:00:00:00:00:20\"",
        "LFIB label 1002: next_hop_mac 03:00:00:00:00:20 is a multicast (group) address",
    );
    refused(
        "next_hop_mac = \"02:00:00:00:00:30\"",
        "next_hop_mac = \"ff:ff:ff:ff:ff:ff\"",
        "deliver 10.1.0.0/16 next_hop_mac ff:ff:ff:ff:ff:ff is the broadcast address",
    );
}

#[test]
fn tunnel_ends_must_be_two_unicast_addresses() {
    let src = "tunnel_src = \"192.0.2.1\"";
    let dst = "tunnel_dst = \"192.0.2.2\"";
    refused(
        src,
        "tunnel_src = \"0.0.0.0\"",
        "SA 4097: tunnel_src 0.0.0.0 is the unspecified address",
    );
    refused(
        dst,
        "tunnel_dst = \"255.255.255.255\"",
        "SA 4097: tunnel_dst 255.255.255.255 is the broadcast address",
    );
    refused(
        dst,
        "tunnel_dst = \"239.1.2.3\"",
        "SA 4097: tunnel_dst 239.1.2.3 is a multicast address",
    );
    refused(
        dst,
        "tunnel_dst = \"192.0.2.1\"",
        "SA 4097: tunnel_src and tunnel_dst are both 192.0.2.1",
    );
}

#[test]
fn names_must_be_printable_and_not_empty() {
    refused(
        "name = \"gw-a\"",
        "name = \"\"",
        "[node] name \"\" is empty",
    );
    refused(
        "name = \"gw-a\"",
        "name = \"gw\\u0007a\"",
        "[node] name \"gw\\u{7}a\" contains the control character U+0007",
    );
    refused(
        "name = \"lan0\"",
        "name = \"lan\\n0\"",
        "port name \"lan\\n0\" contains the control character U+000A",
    );
    refused(
        "name = \"up0\"",
        "name = \"   \"",
        "port name \"   \" is empty",
    );
    refused(
        "mac = \"02:00:00:00:00:02\"",
        "mac = \"02:00:00:00:00:02\"\niface = \"a-very-long-interface\"",
        "port \"up0\" iface \"a-very-long-interface\" is longer than 15",
    );
}

#[test]
fn prefixes_are_written_as_networks() {
    refused(
        "prefix = \"10.2.0.0/16\"",
        "prefix = \"10.2.0.0/+16\"",
        "prefix \"10.2.0.0/+16\": \"+16\" is not a prefix length (0 to 32)",
    );
    refused(
        "prefix = \"10.2.0.0/16\"",
        "prefix = \"10.2.3.4/16\"",
        "prefix \"10.2.3.4/16\": host bits are set (the network is 10.2.0.0/16)",
    );
}

#[test]
fn cores_fit_the_mode() {
    let role = "role = \"gateway\"";
    refused(
        role,
        // Cores this host has (every machine has CPUs 0 and 1 here).
        "role = \"gateway\"\ncores = [0, 1, 0]",
        "[node] cores: core 0 is listed twice: each worker needs its own core",
    );
    refused(
        role,
        "role = \"gateway\"\ncores = [5000]",
        "[node] cores entry = 5000 is out of range: want 0 to 1023",
    );
    refused_at(
        role,
        "role = \"gateway\"\nmode = \"pipeline\"\ncores = [0]",
        "mode = ",
        "mode = \"pipeline\" runs cores in pairs (I/O, crypto), but [node] cores lists 1",
    );
}

#[test]
fn device_backends_need_devices() {
    let role = "role = \"gateway\"";
    refused_at(
        role,
        "role = \"gateway\"\n[io]\nbackend = \"dpdk\"",
        "name = \"lan0\"",
        "port \"lan0\": [io] backend = \"dpdk\" needs the port's device",
    );
    refused_at(
        role,
        "role = \"gateway\"\n[io]\nbackend = \"auto\"",
        "name = \"lan0\"",
        "port \"lan0\": [io] backend = \"auto\" falls back to AF_XDP",
    );
    let text = "[node]\nname = \"x\"\nrole = \"satellite\"\n[io]\nbackend = \"dpdk\"\n";
    let (code, err) = check_bytes("noports.toml", text.as_bytes());
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("noports.toml:5: [io] backend = \"dpdk\" drives the ports' devices, but no [[ports]] is defined"),
        "{err}"
    );
}

#[test]
fn reserved_spis_and_labels_and_numbers_out_of_range_name_the_range() {
    let spi = "spi = 4097";
    for v in ["0", "1", "255", "-1", "5000000000"] {
        refused(
            spi,
            &format!("spi = {v}"),
            &format!("spi = {v} is out of range: want 256 to 4294967295 (0 is invalid and 1-255 are reserved, RFC 4303 §2.1)"),
        );
    }
    for v in ["0", "15", "1048576", "-3"] {
        refused(
            "out_label = 1003",
            &format!("out_label = {v}"),
            &format!(
                "out_label = {v} is out of range: want 16 to 1048575 (0-15 are reserved, RFC 3032)"
            ),
        );
        refused(
            "label = 1005",
            &format!("label = {v}"),
            &format!("lfib label = {v} is out of range: want 16 to 1048575"),
        );
    }
    refused_at(
        "label = 1002\nport",
        "label = 3\nport",
        "label = 3",
        "fec label = 3 is out of range: want 16 to 1048575",
    );
    refused(
        "mac = \"02:00:00:00:00:02\"",
        "mac = \"02:00:00:00:00:02\"\nrx_ring = 4294967296",
        "port \"up0\" rx_ring = 4294967296: want a power of two from 64 to 32768",
    );
    refused(
        "mac = \"02:00:00:00:00:02\"",
        "mac = \"02:00:00:00:00:02\"\nqueues = [-1]",
        "queues: -1 is out of range: want 0 to 4294967295",
    );
    refused_at(
        "aead = \"aes-128-gcm\"",
        "aead = \"aes-256-gcm\"",
        "key = ",
        "SA 4097: key has 20 bytes, aes-256-gcm needs 32 key bytes + 4 salt bytes = 36",
    );
}

#[test]
fn control_times_are_bounded() {
    let with = |extra: &str| {
        format!("{GOOD}\n[control]\nconstellation = \"kuiper-630\"\nnode = \"gs:Tokyo\"\n{extra}\n")
    };
    for (extra, why) in [
        (
            "start_s = 1e300",
            "start_s must be a non-negative number of seconds, at most 1e9",
        ),
        (
            "start_s = nan",
            "start_s must be a non-negative number of seconds",
        ),
        (
            "time_scale = 1e300",
            "time_scale = 1e300: want a number from 1e-6 to 1e6",
        ),
        ("time_scale = 1e-300", "want a number from 1e-6 to 1e6"),
    ] {
        let text = with(extra);
        let (code, err) = check_bytes("ctl.toml", text.as_bytes());
        assert_eq!(code, Some(1), "{extra}: {err}");
        let line = text.lines().count();
        assert!(
            err.contains(&format!("ctl.toml:{line}: ")) && err.contains(why),
            "{extra}: {err}"
        );
    }
    let (code, err) = check_bytes("ctl.toml", with("start_s = 1e9").as_bytes());
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn messages_have_a_reason_a_line_and_a_bounded_echo() {
    // A control character in a comment.
    let (code, err) = check_bytes(
        "c.toml",
        b"[node]\n# a\x01b\nname = \"x\"\nrole = \"gateway\"\n",
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("c.toml:2: control character U+0001 is not allowed in TOML"),
        "{err}"
    );

    // Not UTF-8: the line and byte offset of the first bad byte.
    let (code, err) = check_bytes("u.toml", b"[node]\nname = \"x\xff\"\nrole = \"gateway\"\n");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("u.toml:2: not UTF-8: byte 0xff at byte offset 16 (column 10)"),
        "{err}"
    );

    // A 1 MiB value is not repeated whole.
    let huge = "a".repeat(1 << 20);
    for text in [
        GOOD.replace("role = \"gateway\"", &format!("role = \"{huge}\"")),
        GOOD.replace("mac = \"02:00:00:00:00:01\"", &format!("mac = \"{huge}\"")),
        GOOD.replace("port = \"up0\"", &format!("port = \"{huge}\"")),
    ] {
        let (code, err) = check_bytes("h.toml", text.as_bytes());
        assert_eq!(code, Some(1));
        assert!(
            err.len() < 700,
            "{} bytes: {}",
            err.len(),
            err.chars().take(700).collect::<String>()
        );
        assert!(err.contains('…') && !err.contains(&"a".repeat(65)), "{err}");
    }

    // The reason a file cannot be read, once.
    let (code, err) = check_path(&dir());
    assert_eq!(code, Some(1));
    assert_eq!(err.matches("directory").count(), 1, "{err}");
    assert!(err.matches("os error").count() <= 1, "{err}");
}

#[test]
fn a_port_ipv6_address_must_be_one_unicast_address_with_a_length() {
    let lan = "mac = \"02:00:00:00:00:01\"";
    let ok = GOOD.replacen(
        lan,
        "mac = \"02:00:00:00:00:01\"\naddress6 = \"fd00:1::1/64\"",
        1,
    );
    let (code, err) = check_bytes("v6.toml", ok.as_bytes());
    assert_eq!(code, Some(0), "{err}");
    refused(
        lan,
        "mac = \"02:00:00:00:00:01\"\naddress6 = \"ff02::1/64\"",
        "port \"lan0\" address6: ff02::1 is a multicast address; give the port's unicast address",
    );
    refused(
        lan,
        "mac = \"02:00:00:00:00:01\"\naddress6 = \"10.1.0.1/16\"",
        "port \"lan0\" address6: \"10.1.0.1/16\" is not an IPv6 address with a prefix length",
    );
    refused(
        lan,
        "mac = \"02:00:00:00:00:01\"\naddress6 = \"::/0\"",
        "is the unspecified address",
    );
}

#[test]
fn sa_lifetimes_are_checked_and_each_sa_says_how_long_it_lasts() {
    let dst = "tunnel_dst = \"192.0.2.2\"";
    let with = |l: &str| format!("{dst}\n{l}");
    refused(
        dst,
        &with("lifetime = { soft_packets = 10, hard_packets = 5 }"),
        "SA 4097: lifetime soft_packets = 10 must be below hard_packets = 5",
    );
    refused(
        dst,
        &with("lifetime = { hard_seconds = 0 }"),
        "SA 4097: lifetime hard_seconds = 0: a lifetime limit is at least 1 (leave it out for none)",
    );
    refused(
        dst,
        &with("lifetime = { hard_packets = 4294967296 }"),
        "SA 4097: lifetime hard_packets = 4294967296 is more packets than 32-bit sequence numbers can number (4294967295): set esn = true (on both ends of the SA) or lower it",
    );
    refused(
        dst,
        &with("[sa.lifetime]\nsoft_bytes = -1"),
        "SA 4097: lifetime soft_bytes = -1 is out of range: want 1 to 9223372036854775807",
    );

    // Accepted: each SA is described, with what its sequence numbers and
    // lifetime mean.
    let d = dir().join("lifetimes");
    std::fs::create_dir_all(&d).expect("dir");
    let path = d.join("gw.toml");
    let text = GOOD.replacen(
        dst,
        &with("lifetime = { soft_seconds = 3000, hard_seconds = 3600 }"),
        1,
    );
    std::fs::write(&path, &text).expect("write");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run meshplane");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "  SA 4097 out 192.0.2.1 -> 192.0.2.2: 32-bit sequence numbers (esn = false, the default): \
             asks for a rekey after 4026531840 and expires after 4294967295 packets; \
             esn = true on both ends lifts this; lifetime: rekey at 3000 s, expires at 3600 s"
        ),
        "{stdout}"
    );
    std::fs::write(&path, text.replacen(dst, &with("esn = true"), 1)).expect("write");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run meshplane");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("SA 4097 out 192.0.2.1 -> 192.0.2.2: 64-bit sequence numbers (esn = true); lifetime: rekey at 3000 s"),
        "{stdout}"
    );
}

#[test]
fn an_ike_gateway_is_described_and_its_psk_file_checked() {
    use std::os::unix::fs::PermissionsExt;
    let d = dir().join("ike");
    std::fs::create_dir_all(&d).expect("dir");
    let psk = d.join("psk");
    std::fs::write(&psk, "00112233445566778899aabbccddeeff\n").expect("write");
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let text = format!(
        "[node]\nname = \"gw\"\nrole = \"gateway\"\n\n\
         [[ports]]\nname = \"up0\"\nmac = \"02:00:00:00:00:01\"\n\n\
         [[fec]]\nprefix = \"10.2.0.0/16\"\npeer = \"192.0.2.2\"\nlabel = 1002\n\
         port = \"up0\"\nnext_hop_mac = \"02:00:00:00:01:01\"\n\n\
         [ike]\naddress = \"192.0.2.1\"\nidentity = \"gw-a\"\npsk_file = \"{}\"\n\n\
         [[ike.peer]]\naddress = \"192.0.2.2\"\nidentity = \"gw-b\"\ninitiate = true\n",
        psk.display()
    );
    let path = d.join("gw.toml");
    std::fs::write(&path, text).expect("write");
    let (code, out) = check_path(&path);
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("is readable or writable by its group or by others (mode 0640)"),
        "{out}"
    );
    std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let run = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .expect("run meshplane");
    let out = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(0), "{out}");
    assert!(
        out.contains("IKEv2 from 192.0.2.1 as gw-a (pre-shared key from ")
            && out.contains("peers 192.0.2.2 (gw-b, initiated here)"),
        "{out}"
    );
    assert!(!out.contains("00112233"), "the key is never printed: {out}");
}
