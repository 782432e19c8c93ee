//! Raw bindings to the system intel-ipsec-mb (>= 1.3).
//!
//! Generated at build time by bindgen over `intel-ipsec-mb.h`: the manager
//! (`alloc_mb_mgr`, `init_mb_mgr_auto`, `free_mb_mgr`), whose function
//! pointers (`gcm128_enc`, `gcm256_dec`, `gcm128_pre`, ...) are the
//! library's direct API for the CPU it detected, and the AES-GCM key and
//! context structures the caller owns. The header's `IMB_AES128_GCM_ENC`
//! style macros only call those pointers; bindgen cannot see macros.
//!
//! The raw items mirror the C API one to one; `gcm` is the safe layer over
//! the direct AES-GCM API that meshplane's ESP stage uses.

#![allow(non_upper_case_globals)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(dead_code)]
#![allow(clippy::all)]
#![allow(missing_docs)]
#![allow(rustdoc::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

pub mod gcm;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcm_structures_match_the_header() {
        // Key data: 15 round keys, then the hash-key powers; 64-byte aligned.
        assert_eq!(std::mem::align_of::<gcm_key_data>(), 64);
        assert!(std::mem::size_of::<gcm_key_data>() >= 16 * 15 + 16 * 48);
        // Context: aad_hash, two lengths, three blocks, one length.
        assert_eq!(std::mem::size_of::<gcm_context_data>(), 16 + 8 + 8 + 48 + 8);
    }

    #[test]
    fn the_manager_initialises_for_this_cpu() {
        // SAFETY: alloc/init/free in order on one pointer, checked for null.
        unsafe {
            let mgr = alloc_mb_mgr(0);
            assert!(!mgr.is_null());
            let mut arch: IMB_ARCH = IMB_ARCH_NONE;
            init_mb_mgr_auto(mgr, &mut arch);
            assert_ne!(arch, IMB_ARCH_NONE);
            assert!((*mgr).gcm128_enc.is_some());
            assert!((*mgr).gcm256_dec.is_some());
            free_mb_mgr(mgr);
        }
    }
}
