//! Product quantization of Linear weights (Gong, Liu, Yang and Bourdev, "Compressing Deep
//! Convolutional Networks using Vector Quantization", 2014, arXiv 1412.6115).
//!
//! Each weight row is cut into sub-vectors of `d` consecutive inputs; per group of `d`
//! input columns (a subspace) a k-means codebook of `k ≤ 256` centroids is learnt from the
//! rows' sub-vectors, and every sub-vector is stored as a `ceil(log2 k)`-bit index.
//!
//! * [`ProductConfig`]: `d`, `k`, iterations;
//! * [`ProductTensor`]: the encoding (exact storage size, decode, codebook matmul);
//! * [`ProductQuantize`]: the pass over a model's Linear layers.
//!
//! Use it for large fully connected layers when about one bit per weight or less is
//! wanted without calibration data; uniform quantization (or GPTQ with data) keeps more
//! accuracy at 3 to 4 bits.
//!
//! ```
//! use deepcompress_core::tensor::Tensor;
//! use deepcompress_quant::product::{ProductConfig, ProductTensor};
//! use ndarray::Array2;
//!
//! let w = Array2::from_shape_fn((300, 100), |(i, j)| (((i * 37 + j * 11) % 97) as f32 - 48.0) / 48.0);
//! let err = |k| {
//!     let pq = ProductTensor::quantize(w.view(), &ProductConfig::new(4, k), 0).unwrap();
//!     (&pq.to_dense() - &w.clone().into_dyn()).mapv(|v| v * v).sum()
//! };
//! assert!(err(256) < err(16));
//! ```

mod config;
mod kmeans;
mod pass;
mod tensor;

pub use config::ProductConfig;
pub use pass::ProductQuantize;
pub use tensor::ProductTensor;
