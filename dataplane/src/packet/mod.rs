//! Zero-copy header views: zerocopy structs underneath, checked views on top.
//!
//! Each protocol module follows the pattern of smoltcp's `wire` module:
//!
//! - a `#[repr(C)]` zerocopy struct (`FromBytes`, `IntoBytes`, `KnownLayout`,
//!   `Immutable`, `Unaligned`, network-endian fields) that carries the layout;
//! - a view over any `T: AsRef<[u8]>` (a frame's bytes, a slice, a `Vec`)
//!   built with `new_checked`, which validates lengths and the fields the
//!   other accessors depend on;
//! - accessors that never panic: on a view built with `new_unchecked` over a
//!   buffer that is too short, getters return zero or an empty slice and
//!   setters do nothing;
//! - a `write_header` function for building a header in place.
//!
//! Nothing here allocates and nothing here uses `unsafe`.

#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Declares a header view `$view<T: AsRef<[u8]>>` over a buffer whose
/// start holds the zerocopy struct `$header`, with what every view shares:
/// `new_unchecked`, `into_inner`, and the private `header()` /
/// `header_mut()`, which give the fixed header or `None` when the buffer is
/// too short (so accessors built on them never panic). Each protocol module
/// adds its own `new_checked` and accessors.
macro_rules! header_view {
    ($(#[$doc:meta])* $view:ident => $header:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $view<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $view<T> {
            /// Wraps `buf` without checks; accessors on a short buffer
            /// return zeros or empty slices, and setters do nothing.
            #[inline]
            pub fn new_unchecked(buf: T) -> Self {
                Self { buffer: buf }
            }

            /// Gives the buffer back.
            #[inline]
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The fixed header, if the buffer is long enough to hold it.
            #[inline]
            fn header(&self) -> Option<&$header> {
                <$header as zerocopy::FromBytes>::ref_from_prefix(self.buffer.as_ref())
                    .ok()
                    .map(|(h, _)| h)
            }
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            /// The fixed header, writable, if the buffer is long enough.
            #[inline]
            fn header_mut(&mut self) -> Option<&mut $header> {
                <$header as zerocopy::FromBytes>::mut_from_prefix(self.buffer.as_mut())
                    .ok()
                    .map(|(h, _)| h)
            }
        }
    };
}

pub mod arp;
pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
pub mod mpls_echo;
pub mod punted;
pub mod udp;
pub mod vlan;

/// Why a header could not be parsed or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header (or than the length it claims).
    #[error("truncated")]
    Truncated,
    /// A field holds a value the protocol does not allow.
    #[error("malformed")]
    Malformed,
}

/// Result of parsing or writing a header.
pub type Result<T> = core::result::Result<T, Error>;
