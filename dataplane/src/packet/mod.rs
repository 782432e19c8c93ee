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

pub mod checksum;
pub mod esp;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod mpls;
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
