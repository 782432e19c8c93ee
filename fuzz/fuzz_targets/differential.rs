//! The stages against the reference forwarder: the input is read as the
//! choices of structure-aware traffic (`reference::cases`) for each node
//! of the embedded chain, and every frame must leave the stages with the
//! verdict and bytes the reference gives it, through every entry to the
//! stages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::chain::{default_chain, Hop};
use meshplane::frame::HeapFrame;
use meshplane::reference::cases::{Choices, Traffic};
use meshplane::reference::diff::{check_batch, Entry, Tally};
use meshplane::reference::Reference;
use meshplane::tables::Tables;
use std::sync::OnceLock;

fn hops() -> &'static [Hop] {
    static H: OnceLock<Vec<Hop>> = OnceLock::new();
    H.get_or_init(|| default_chain().expect("embedded configs parse"))
}

fuzz_target!(|data: &[u8]| {
    let mut heap = |bytes: &[u8], room: Option<usize>| {
        Some(match room {
            Some(r) => {
                let mut f = HeapFrame::with_room(r.max(bytes.len()));
                f.reset_from(bytes);
                f
            }
            None => HeapFrame::from_bytes(bytes),
        })
    };
    let mut tally = Tally::default();
    for (n, hop) in hops().iter().enumerate() {
        let t = Tables::from_config(&hop.node, 1).expect("tables");
        let mut model = Reference::new(&hop.node);
        let mut traffic = Traffic::new(&hop.node);
        let mut c = Choices::new(data);
        for (i, case) in traffic.batches(&mut c).iter().enumerate() {
            let entry = [Entry::Process, Entry::OnePort, Entry::Split][(i + n) % 3];
            if let Err(m) = check_batch(&t, &mut model, case, entry, &mut heap, &mut tally) {
                panic!("{}: batch {i} ({entry:?}): {m}", hop.node.name);
            }
        }
    }
});
