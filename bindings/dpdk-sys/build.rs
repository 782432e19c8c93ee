//! Finds the system DPDK through pkg-config, generates bindings for the
//! parts meshplane uses and compiles the shim for DPDK's static-inline
//! functions. Nothing generated is committed: it all lands in `OUT_DIR`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_VERSION: &str = "22.11";

fn missing(detail: &str) -> ! {
    // One line: cargo prints it verbatim under "failed to run custom build command".
    let detail = detail.trim();
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    eprintln!(
        "error: DPDK >= {MIN_VERSION} not found through pkg-config `libdpdk`{detail}; \
         install `libdpdk-dev` (run scripts/setup)"
    );
    std::process::exit(1);
}

/// The full compiler flags: besides include paths they carry
/// `-include rte_config.h` and `-march=...`, which the headers need
/// (`rte_memcpy.h` does not build without SSSE3). The pkg-config crate only
/// exposes include paths and defines, so ask the tool itself.
fn cflags() -> Vec<String> {
    let tool = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into());
    let out = match Command::new(&tool).args(["--cflags", "libdpdk"]).output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => missing(String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => missing(&format!("{tool}: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // `-include rte_config.h` comes as two words; keep them together.
    let mut flags = Vec::new();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "-include" {
            if let Some(file) = words.next() {
                flags.push(format!("-include{file}"));
            }
        } else {
            flags.push(w.to_string());
        }
    }
    flags
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/c/wrapper.h");
    println!("cargo:rerun-if-changed=src/c/shim.h");
    println!("cargo:rerun-if-changed=src/c/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let lib = match pkg_config::Config::new()
        .atleast_version(MIN_VERSION)
        .cargo_metadata(false)
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().map(str::trim).find(|l| !l.is_empty());
            missing(first.unwrap_or("not found"))
        }
    };
    let flags = cflags();

    // The shim first, so that the static archive precedes the shared DPDK
    // libraries it calls on the link line.
    let mut build = cc::Build::new();
    build.file("src/c/shim.c").include("src/c").opt_level(3);
    for f in &flags {
        build.flag(f);
    }
    // DPDK headers are not warning-clean under -Wextra.
    build.warnings(false);
    build.compile("meshplane_dpdk_shim");

    // Link against the shared libraries: EAL then loads the PMDs (net_ring,
    // net_null, net_pcap, net_af_xdp, ...) from its plugin directory itself.
    for path in &lib.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for name in &lib.libs {
        println!("cargo:rustc-link-lib=dylib={name}");
    }
    println!("cargo:version={}", lib.version);

    let bindings = bindgen::Builder::default()
        .header("src/c/wrapper.h")
        .clang_args(flags.iter())
        .clang_arg("-Isrc/c")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("shim_.*")
        .allowlist_function("rte_eal_.*")
        .allowlist_function("rte_eth_.*")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_(free|avail_count|in_use_count|lookup)")
        .allowlist_function("rte_ring_(create|free|lookup)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_lcore_.*")
        .allowlist_function("rte_thread_(un)?register")
        .allowlist_function("rte_socket_id")
        .allowlist_function("rte_get_main_lcore")
        .allowlist_function("rte_log_set_global_level")
        .allowlist_type("rte_ether_hdr")
        .allowlist_type("rte_vlan_hdr")
        .allowlist_type("rte_ipv4_hdr")
        .allowlist_type("rte_ipv6_hdr")
        .allowlist_type("rte_udp_hdr")
        .allowlist_var("RTE_ETH_.*")
        .allowlist_var("RTE_MAX_ETHPORTS")
        .allowlist_var("RTE_MAX_LCORE")
        .allowlist_var("RTE_MAX_QUEUES_PER_PORT")
        .allowlist_var("RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_.*")
        .allowlist_var("RTE_MBUF_F_.*")
        .allowlist_var("RTE_MEMPOOL_CACHE_MAX_SIZE")
        .allowlist_var("RTE_ETHER_.*")
        .allowlist_var("RTE_RING_.*")
        .allowlist_var("RING_F_.*")
        .allowlist_var("SOCKET_ID_ANY")
        .allowlist_var("LCORE_ID_ANY")
        .allowlist_var("RTE_LOG_.*")
        .allowlist_var("E_RTE_.*")
        // Packed and aligned at once: Rust cannot express them.
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        // RTE_BIT64(n) constants (RSS types, offloads) are function-like
        // macros; let clang evaluate them.
        .clang_macro_fallback()
        .prepend_enum_name(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| missing(&format!("bindgen failed: {e}")));

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");
}
