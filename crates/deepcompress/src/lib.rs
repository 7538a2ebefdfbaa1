//! deepcompress facade (work in progress).
pub use deepcompress_core as core;
pub use deepcompress_core::*;
