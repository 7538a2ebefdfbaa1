//! Rank selection.

mod vbmf;

pub use vbmf::{Vbmf, vbmf, vbmf_from_spectrum, vbmf_tucker_ranks};
