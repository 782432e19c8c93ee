//! Every stage over structure-aware traffic: the input is read as the
//! choices of `reference::cases` (frames with each node's MACs, labels,
//! SPIs and prefixes, valid and corrupted ICVs, replays, one field wrong,
//! kinds mixed in one batch) and each batch goes through the stages of
//! each node of the embedded chain (gateway ingress and egress, satellite
//! transit). Every frame must leave with a final verdict, a sent frame by
//! a port the node has, and nothing may panic.
//!
//! The tables are built once, not per input (that made the target about
//! 30 times slower): SA state (sequence numbers, replay windows) carries
//! over from input to input, which only widens what is reached.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::chain::default_chain;
use meshplane::config::NodeConfig;
use meshplane::frame::{Batch, Frame, HeapFrame, Verdict};
use meshplane::reference::cases::{Choices, Traffic};
use meshplane::stage;
use meshplane::tables::Tables;
use std::sync::OnceLock;

fn nodes() -> &'static [(NodeConfig, Tables)] {
    static N: OnceLock<Vec<(NodeConfig, Tables)>> = OnceLock::new();
    N.get_or_init(|| {
        default_chain()
            .expect("embedded configs parse")
            .into_iter()
            .map(|h| {
                let t = Tables::from_config(&h.node, 1).expect("tables");
                (h.node, t)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    for (cfg, t) in nodes() {
        let mut traffic = Traffic::new(cfg);
        let mut c = Choices::new(data);
        for case in traffic.batches(&mut c) {
            let mut b: Batch<HeapFrame> = Batch::new();
            b.set_rx_port(case.rx_port);
            for (bytes, room) in &case.frames {
                let f = match room {
                    Some(r) => {
                        let mut f = HeapFrame::with_room((*r).max(bytes.len()));
                        f.reset_from(bytes);
                        f
                    }
                    None => HeapFrame::from_bytes(bytes),
                };
                let _ = b.push(f);
            }
            let n = b.len();
            stage::process(&mut b, t);
            assert_eq!(b.len(), n, "no frame is lost inside the stages");
            for (f, v) in b.frames().iter().zip(b.verdicts()) {
                match *v {
                    Verdict::Tx(p) => {
                        assert!(usize::from(p) < cfg.ports.len(), "sent by port {p}");
                        assert!(f.len() >= 14, "a sent frame has an Ethernet header");
                    }
                    // Dropped, or handed to the node's control thread.
                    Verdict::Drop(_) | Verdict::Punt => {}
                    other => panic!("frame left the stages as {other:?}"),
                }
            }
        }
    }
});
