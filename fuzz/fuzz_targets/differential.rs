//! The stages against the reference forwarder: the input is read as the
//! choices of structure-aware traffic (`reference::cases`) for each node
//! of the embedded chain, and every frame must leave the stages with the
//! verdict and bytes the reference gives it, through every entry to the
//! stages.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meshplane::reference::diff::{check_chain, heap_frame, Tally};

fuzz_target!(|data: &[u8]| {
    let mut tally = Tally::default();
    if let Err(m) = check_chain(data, &mut heap_frame, &mut tally) {
        panic!("{m}");
    }
});
