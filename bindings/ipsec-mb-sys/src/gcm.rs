//! A safe layer over the library's direct AES-GCM API (`IMB_AES128_GCM_ENC`
//! and friends): one call per packet, in place, with the key schedule in
//! memory this module owns.
//!
//! The library picks its code for the CPU once (`init_mb_mgr_auto`): on a
//! CPU with VAES and AVX-512 it runs GCM over four blocks per instruction.
//! The manager is only asked for its function pointers; the direct API
//! keeps no state in it, so one `Library` serves every thread.
//!
//! Key hygiene: the expanded key and hash-key powers live in a `KeyData`
//! this module allocates and zeroizes on drop; the per-call GCM context
//! (which holds a keystream block and the AAD hash) lives on the stack and
//! is zeroized after each call.

use std::sync::OnceLock;

use zeroize::Zeroize;

use crate as imb;

/// GCM nonce length: 4-byte salt and 8-byte IV (RFC 4106).
pub const IV_LEN: usize = 12;
/// Tag length meshplane uses (the full 16 bytes).
pub const TAG_LEN: usize = 16;

/// One-shot encrypt or decrypt: key, context, out, in, len, IV, AAD,
/// AAD length, tag out, tag length.
type CryptFn = unsafe extern "C" fn(
    *const imb::gcm_key_data,
    *mut imb::gcm_context_data,
    *mut u8,
    *const u8,
    u64,
    *const u8,
    *const u8,
    u64,
    *mut u8,
    u64,
);
/// Key expansion: raw key in, key data out.
type PreFn = unsafe extern "C" fn(*const std::ffi::c_void, *mut imb::gcm_key_data);

/// The library's entry points for one key size.
#[derive(Clone, Copy)]
struct KeySizeFns {
    pre: PreFn,
    enc: CryptFn,
    dec: CryptFn,
}

/// intel-ipsec-mb as initialised for this CPU.
pub struct Library {
    aes128: KeySizeFns,
    aes256: KeySizeFns,
    /// What the log says: version, code path and the features it uses.
    pub description: String,
}

/// The library, initialised on first use, or why it cannot be used.
pub fn library() -> Result<&'static Library, &'static str> {
    static LIB: OnceLock<Result<Library, String>> = OnceLock::new();
    LIB.get_or_init(init).as_ref().map_err(String::as_str)
}

fn arch_name(arch: imb::IMB_ARCH) -> &'static str {
    match arch {
        imb::IMB_ARCH_SSE => "sse",
        imb::IMB_ARCH_AVX => "avx",
        imb::IMB_ARCH_AVX2 => "avx2",
        imb::IMB_ARCH_AVX512 => "avx512",
        imb::IMB_ARCH_NOAESNI => "no-aesni",
        _ => "none",
    }
}

fn init() -> Result<Library, String> {
    // SAFETY: the manager is allocated, initialised, read and freed here in
    // order; nothing keeps a pointer into it. The function pointers it
    // hands out point into the library's code, which stays mapped for the
    // life of the process (it is linked, not dlopen'ed).
    unsafe {
        let version = std::ffi::CStr::from_ptr(imb::imb_get_version_str())
            .to_string_lossy()
            .into_owned();
        let mgr = imb::alloc_mb_mgr(0);
        if mgr.is_null() {
            return Err("intel-ipsec-mb: alloc_mb_mgr failed".into());
        }
        let mut arch: imb::IMB_ARCH = imb::IMB_ARCH_NONE;
        imb::init_mb_mgr_auto(mgr, &mut arch);
        let m = &*mgr;
        let features = m.features;
        let fns = |pre: Option<PreFn>, enc: Option<CryptFn>, dec: Option<CryptFn>| {
            Some(KeySizeFns {
                pre: pre?,
                enc: enc?,
                dec: dec?,
            })
        };
        let aes128 = fns(m.gcm128_pre, m.gcm128_enc, m.gcm128_dec);
        let aes256 = fns(m.gcm256_pre, m.gcm256_enc, m.gcm256_dec);
        imb::free_mb_mgr(mgr);
        let name = arch_name(arch);
        if arch < imb::IMB_ARCH_SSE {
            return Err(format!(
                "intel-ipsec-mb {version}: no AES-NI code path for this CPU ({name})"
            ));
        }
        let (Some(aes128), Some(aes256)) = (aes128, aes256) else {
            return Err(format!(
                "intel-ipsec-mb {version} ({name}): no AES-GCM entry points"
            ));
        };
        let mut uses = Vec::new();
        for (bit, what) in [
            (imb::IMB_FEATURE_VAES, "VAES"),
            (imb::IMB_FEATURE_VPCLMULQDQ, "VPCLMULQDQ"),
            (imb::IMB_FEATURE_AVX512_SKX, "AVX-512"),
        ] {
            let bit = u64::from(bit);
            if features & bit == bit {
                uses.push(what);
            }
        }
        let uses = if uses.is_empty() {
            String::new()
        } else {
            format!(", {}", uses.join(" "))
        };
        Ok(Library {
            aes128,
            aes256,
            description: format!("intel-ipsec-mb {version} ({name}{uses})"),
        })
    }
}

/// `struct gcm_key_data` as bytes this module owns, so that it can be
/// zeroized without reaching into the C type.
#[repr(C, align(64))]
struct KeyData([u8; std::mem::size_of::<imb::gcm_key_data>()]);

const _: () = {
    assert!(std::mem::size_of::<KeyData>() == std::mem::size_of::<imb::gcm_key_data>());
    assert!(std::mem::align_of::<KeyData>() >= std::mem::align_of::<imb::gcm_key_data>());
    assert!(std::mem::size_of::<imb::gcm_context_data>() % 8 == 0);
};

/// `struct gcm_context_data` as words, zeroized after every call.
type Context = [u64; std::mem::size_of::<imb::gcm_context_data>() / 8];

impl Drop for KeyData {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// An AES-GCM key (128 or 256 bits) expanded by the library.
pub struct GcmKey {
    key: Box<KeyData>,
    fns: KeySizeFns,
}

impl GcmKey {
    /// Expands `key` with the library's code for this CPU: AES-128-GCM for
    /// 16 bytes, AES-256-GCM for 32, `None` for any other length.
    pub fn new(lib: &Library, key: &[u8]) -> Option<Self> {
        let fns = match key.len() {
            16 => lib.aes128,
            32 => lib.aes256,
            _ => return None,
        };
        let mut data = Box::new(KeyData([0; std::mem::size_of::<imb::gcm_key_data>()]));
        // SAFETY: `key` holds the key length the entry point expects (chosen
        // by it above); `data` is a writable, 64-byte aligned `gcm_key_data`.
        unsafe {
            (fns.pre)(
                key.as_ptr().cast(),
                data.0.as_mut_ptr().cast::<imb::gcm_key_data>(),
            )
        };
        Some(GcmKey { key: data, fns })
    }

    /// Encrypts `buf` in place and writes the tag. The library returns
    /// without writing anything when it refuses its arguments (it never
    /// should for these), so a caller that pre-sets `tag` can tell.
    #[inline]
    pub fn encrypt(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8], tag: &mut [u8; TAG_LEN]) {
        self.crypt(self.fns.enc, iv, aad, buf, tag);
    }

    /// Decrypts `buf` in place and writes the tag it computes; comparing it
    /// with the received one is the caller's.
    #[inline]
    pub fn decrypt(&self, iv: &[u8; IV_LEN], aad: &[u8], buf: &mut [u8], tag: &mut [u8; TAG_LEN]) {
        self.crypt(self.fns.dec, iv, aad, buf, tag);
    }

    #[inline]
    fn crypt(
        &self,
        f: CryptFn,
        nonce: &[u8; IV_LEN],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; TAG_LEN],
    ) {
        let mut ctx: Context = [0; std::mem::size_of::<Context>() / 8];
        let p = buf.as_mut_ptr();
        // SAFETY: key data was expanded for this entry point's key size; the
        // context is a writable `gcm_context_data`; `p` covers `buf.len()`
        // bytes, read and written in place (the library supports in == out);
        // the IV is the 12 bytes the one-shot API reads; `aad` and `tag`
        // cover the lengths passed.
        unsafe {
            f(
                self.key.0.as_ptr().cast::<imb::gcm_key_data>(),
                ctx.as_mut_ptr().cast::<imb::gcm_context_data>(),
                p,
                p.cast_const(),
                buf.len() as u64,
                nonce.as_ptr(),
                aad.as_ptr(),
                aad.len() as u64,
                tag.as_mut_ptr(),
                TAG_LEN as u64,
            )
        };
        ctx.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_aes_128_and_256_keys_are_taken() {
        let lib = library().expect("an AES-NI code path");
        assert!(GcmKey::new(lib, &[1; 16]).is_some());
        assert!(GcmKey::new(lib, &[1; 32]).is_some());
        assert!(GcmKey::new(lib, &[1; 24]).is_none());
        assert!(GcmKey::new(lib, &[]).is_none());
    }

    /// The first test case of the GCM specification with a 96-bit IV
    /// (McGrew and Viega, test case 4), through the library.
    #[test]
    fn reproduces_the_gcm_specification() {
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect()
        };
        let lib = library().expect("an AES-NI code path");
        let key = GcmKey::new(lib, &hex("feffe9928665731c6d6a8f9467308308")).expect("key");
        let iv: [u8; IV_LEN] = hex("cafebabefacedbaddecaf888").try_into().expect("iv");
        let aad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
        let mut buf = hex(
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
             1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        );
        let mut tag = [0u8; TAG_LEN];
        key.encrypt(&iv, &aad, &mut buf, &mut tag);
        assert_eq!(
            buf,
            hex(
                "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
                 21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
            )
        );
        assert_eq!(tag.to_vec(), hex("5bc94fbc3221a5db94fae95ae7121a47"));
    }
}
