//! Unstructured and semi-structured pruning: magnitude per layer or global, N:M, blocks.

mod block;
mod magnitude;
mod n_m;
mod pass;

pub use block::block_mask;
pub use magnitude::{global_magnitude_masks, magnitude_mask};
pub use n_m::n_m_mask;
pub use pass::{MagnitudePrune, Pattern, Sparsity};
