#![doc = include_str!("../../../README.md")]
#![deny(missing_docs)]

mod compressor;
#[cfg(feature = "prune")]
pub mod recipes;
mod report;

pub use compressor::Compressor;
pub use report::{CompressionReport, LayerRow};

/// Pruning and sharing (feature `prune`, on by default): magnitude, N:M, block and
/// structured pruning, schedules, sensitivity analysis, k-means sharing, HashedNets,
/// Huffman coding and the compressed container file.
#[cfg(feature = "prune")]
pub use deepcompress_prune as prune;

/// Low-rank factorisation (feature `lowrank`, on by default): truncated and randomized
/// SVD, factored Linear and Conv2d layers, per-layer and global rank selection, and
/// data-aware (whitened) factorisation.
#[cfg(feature = "lowrank")]
pub use deepcompress_lowrank as lowrank;

/// Quantization and binarization (feature `quant`, on by default): uniform quantization
/// with packed low-bit storage, activation calibration and static int8 PTQ into integer
/// layers, quantization-aware training (STE, LSQ, PACT), binary and ternary weights,
/// GPTQ, product quantization, and int8/4-bit kernels.
#[cfg(feature = "quant")]
pub use deepcompress_quant as quant;

/// The core crate: tensors, layers, model tree, training, data, I/O, linalg, passes.
pub use deepcompress_core as core;
pub use deepcompress_core::{
    Constraint, CoreError, DenseTensor, Layer, Mode, Model, Param, Result, Selector, Tensor, data,
    ensure_finite, error, layer, model, models, ops, param, pass, tensor, train,
};
