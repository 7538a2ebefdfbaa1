//! Singular value decompositions for factorising weights: exact truncated SVD with its
//! Eckart–Young error, and randomized SVD for large matrices.

mod randomized;
mod truncated;

pub use randomized::RandomizedSvd;
pub use truncated::{Truncated, truncated_svd};
pub(crate) use truncated::{balanced, check_rank, tail_norm};
