//! Parameter pruning and sharing for deepcompress (family 1 of Cheng et al., IEEE SPM 2018).
//!
//! Pruning here shrinks the model for real: a pruned Linear becomes a CSR
//! [`SparseTensor`](sparse::SparseTensor) multiplied by its own kernel, structured pruning
//! removes filters and fixes every dependent layer, weight sharing stores b-bit indices
//! into a codebook, and the container file stores it all Huffman-coded, so that the byte
//! count a report prints is the size of a file that loads back.
#![deny(missing_docs)]

pub mod bits;
pub mod coding;
pub mod error;
pub mod hashed;
pub mod mask;
pub mod schedule;
pub mod sensitivity;
pub mod sharing;
pub mod sparse;
pub mod structured;
mod targets;
pub mod unstructured;

pub use error::{PruneError, Result};
pub use mask::Mask;
pub use targets::WeightKind;
