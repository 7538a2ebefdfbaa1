//! Numeric kernels shared by layers and compressed tensors.

mod gemm;
mod im2col;
mod parallel;

pub use gemm::{gemm, matmul, matmul_nt, matmul_tn};
pub use im2col::{ConvGeometry, col2im_add, im2col};
pub use parallel::worth_parallel;
