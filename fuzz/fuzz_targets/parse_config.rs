//! The node configuration parser over arbitrary bytes: it returns rather
//! than panics, an error has a reason, a bounded message and a line inside
//! the text, and what it accepts holds only what validation admits (see
//! `meshplane::config::broken_promise`, which the dataplane's property
//! tests run too). An accepted configuration must also build its tables.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::config::{broken_promise, NodeConfig};

fuzz_target!(|data: &[u8]| {
    if let Some(p) = broken_promise(data) {
        panic!("{p}");
    }
    if let Ok(c) = NodeConfig::parse_bytes(data, "fuzz.toml") {
        // A configuration check-config accepts builds its tables.
        if let Err(e) = meshplane::tables::Tables::from_config(&c, 0) {
            panic!("accepted, but its tables do not build: {e}");
        }
    }
});
