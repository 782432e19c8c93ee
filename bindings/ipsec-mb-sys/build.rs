//! Finds the system intel-ipsec-mb by its header (the library ships no
//! pkg-config file), checks its version and generates bindings for the
//! manager set-up and the AES-GCM types. Nothing generated is committed: it
//! all lands in `OUT_DIR`.
//!
//! `IPSEC_MB_INCLUDE_DIR` and `IPSEC_MB_LIB_DIR` point at a library
//! installed outside the system directories.

use std::env;
use std::path::{Path, PathBuf};

const HEADER: &str = "intel-ipsec-mb.h";
const MIN_VERSION: (u32, u32) = (1, 3);

fn missing(detail: &str) -> ! {
    // One line: cargo prints it verbatim under "failed to run custom build command".
    eprintln!(
        "error: intel-ipsec-mb >= {}.{} not found ({detail}); install `libipsec-mb-dev` \
         (run scripts/setup), or build without the `ipsec-mb` feature",
        MIN_VERSION.0, MIN_VERSION.1
    );
    std::process::exit(1);
}

/// `IMB_VERSION_STR "1.3.0"` from the header, as (major, minor).
fn header_version(text: &str) -> Option<(u32, u32)> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("#define IMB_VERSION_STR"))?;
    let quoted = line.split('"').nth(1)?;
    let mut parts = quoted.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_INCLUDE_DIR");
    println!("cargo:rerun-if-env-changed=IPSEC_MB_LIB_DIR");

    let dirs: Vec<PathBuf> = match env::var_os("IPSEC_MB_INCLUDE_DIR") {
        Some(d) => vec![PathBuf::from(d)],
        None => vec!["/usr/include".into(), "/usr/local/include".into()],
    };
    let Some(dir) = dirs.iter().find(|d| d.join(HEADER).is_file()) else {
        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        missing(&format!("no {HEADER} in {}", looked.join(", ")))
    };
    let header = dir.join(HEADER);
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header)
        .unwrap_or_else(|e| missing(&format!("{}: {e}", header.display())));
    match header_version(&text) {
        Some(v) if v >= MIN_VERSION => println!("cargo:version={}.{}", v.0, v.1),
        Some(v) => missing(&format!("{} is version {}.{}", header.display(), v.0, v.1)),
        None => missing(&format!("{} has no IMB_VERSION_STR", header.display())),
    }

    if let Some(lib) = env::var_os("IPSEC_MB_LIB_DIR") {
        println!(
            "cargo:rustc-link-search=native={}",
            Path::new(&lib).display()
        );
    }
    // The shared library: Debian's static archive is not position-independent.
    println!("cargo:rustc-link-lib=dylib=IPSec_MB");

    let bindings = bindgen::Builder::default()
        .header(header.display().to_string())
        .clang_arg(format!("-I{}", dir.display()))
        .clang_arg("-DLINUX")
        .allowlist_function("alloc_mb_mgr")
        .allowlist_function("free_mb_mgr")
        .allowlist_function("init_mb_mgr_auto")
        .allowlist_function("imb_get_version_str")
        .allowlist_function("imb_get_errno")
        .allowlist_function("imb_get_strerror")
        .allowlist_type("gcm_key_data")
        .allowlist_type("gcm_context_data")
        .allowlist_type("IMB_MGR")
        .allowlist_type("IMB_ARCH")
        .allowlist_var("IMB_FLAG_.*")
        .allowlist_var("IMB_FEATURE_.*")
        .allowlist_var("IMB_GCM_.*")
        .allowlist_var("IMB_MAX_TAG_LEN")
        .prepend_enum_name(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| missing(&format!("bindgen over {}: {e}", header.display())));

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings.rs to OUT_DIR");
}
