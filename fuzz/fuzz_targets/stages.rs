//! Every stage over arbitrary bytes: the input is split into frames and
//! replayed through each node of the embedded chain (gateway ingress and
//! egress, satellite transit). Each frame must be sent or counted as a drop,
//! and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::chain::{default_chain, Hop};
use meshplane::io::pcap::CapturedPacket;
use meshplane::replay::{replay_to_memory, ReplayOptions};
use std::sync::OnceLock;
use std::time::Duration;

fn hops() -> &'static [Hop] {
    static H: OnceLock<Vec<Hop>> = OnceLock::new();
    H.get_or_init(|| default_chain().expect("embedded configs parse"))
}

fuzz_target!(|data: &[u8]| {
    // Frames are separated by a length byte, so the fuzzer controls sizes.
    let mut frames = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        frames.push(CapturedPacket {
            ts: Duration::ZERO,
            data: tail[..n].to_vec(),
        });
        rest = &tail[n..];
    }
    let count = frames.len() as u64;
    let frames: std::sync::Arc<[CapturedPacket]> = frames.into();
    for hop in hops() {
        for rx_port in 0..hop.node.ports.len() {
            let opts = ReplayOptions { loops: 1, rx_port };
            let (r, _) = replay_to_memory(&hop.node, frames.clone(), &opts).expect("replay runs");
            assert_eq!(r.packets_in(), count);
            assert_eq!(r.packets_out() + r.drops().total(), count);
        }
    }
});
