//! Sparse weights: CSR storage with Deep Compression's relative indices, a parallel CSR
//! kernel, and the pass that turns pruned layers into sparse inference layers.

mod csr;
mod kernel;
mod relative_index;

pub use csr::{SparseTensor, SparseValues};
pub(crate) use relative_index::check_index_bits;
pub use relative_index::{CONV_INDEX_BITS, FC_INDEX_BITS, decode_gaps, encode_gaps};
mod sparsify;
pub use sparsify::Sparsify;
