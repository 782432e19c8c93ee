//! The capture reader over arbitrary bytes (pcap and pcapng, any
//! endianness, any block): it returns packets or an error naming what is
//! wrong, never panics, and never yields a record longer than it promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::io::pcap::{read_bytes, MAX_RECORD};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    match read_bytes(data, Path::new("fuzz.pcap")) {
        Ok((packets, info)) => {
            assert!(packets.iter().all(|p| p.data.len() <= MAX_RECORD));
            assert!(info.truncated <= packets.len() as u64);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
