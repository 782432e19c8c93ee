//! Zero-copy header views: zerocopy structs underneath, checked views on top.
