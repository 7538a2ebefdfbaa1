//! Quantization for deepcompress (family 1 of Cheng et al., IEEE SPM 2018: quantization
//! and binarization).
//!
//! Everything stores real low-bit weights with an exact size, and every method is a
//! [`Pass`](deepcompress_core::pass::Pass) for the `Compressor` pipeline:
//!
//! * uniform quantization: a [`QuantTensor`] holds packed 2- to 8-bit (or 16-bit) codes
//!   and its scales ([`QuantizeWeights`] for weight-only post-training quantization);
//! * calibration and static int8: [`Observer`] (min-max, moving average, percentile, MSE,
//!   KL) and [`StaticQuantize`] into integer [`QLinear`] / [`QConv2d`] layers;
//! * quantization-aware training: [`PrepareQat`] / [`ConvertQat`] with [`FakeQuant`],
//!   [`LsqWeight`], [`LsqActivation`] and [`Pact`];
//! * binary and ternary weights: [`PrepareBinary`] / [`ConvertBinary`] (BinaryConnect,
//!   XNOR scaling, TWN) into [`BinaryTensor`] / [`TernaryTensor`];
//! * data-aware rounding: [`Gptq`]; product quantization: [`ProductQuantize`];
//! * [`kernels`]: int8 GEMV/GEMM and 4-bit GEMV with exact integer accumulation.
//!
//! ```
//! use deepcompress_core::tensor::Tensor;
//! use deepcompress_quant::{Granularity, QuantScheme, QuantTensor};
//! use ndarray::Array2;
//!
//! let w = Array2::from_shape_fn((64, 128), |(i, j)| ((i * 7 + j * 13) % 29) as f32 / 29.0 - 0.5);
//! let scheme = QuantScheme::new(4).granularity(Granularity::PerGroup { rows: 1, cols: 32 });
//! let q = QuantTensor::quantize(&w.clone().into_dyn(), &scheme)?;
//! // 4 bits per weight plus one f32 scale per 32 weights: 5 bits per weight.
//! assert_eq!(q.storage_bits(), 64 * 128 * 4 + 64 * 4 * 32);
//! let err = (&q.to_dense() - &w.into_dyn()).mapv(f32::abs).fold(0.0_f32, |a, &b| a.max(b));
//! assert!(err <= q.max_scale() / 2.0 + 1e-6);
//! # Ok::<(), deepcompress_quant::QuantError>(())
//! ```
#![deny(missing_docs)]

pub mod binary;
mod calibrate;
pub mod error;
pub mod gptq;
pub mod kernels;
pub mod pack;
mod pass;
pub mod product;
pub mod qat;
mod scheme;
mod static_ptq;
mod streamed;
mod tensor;

pub use binary::{
    BinaryConnect, BinaryMethod, BinaryScale, BinaryTensor, ConvertBinary, PrepareBinary,
    TernaryTensor, TernaryWeights,
};
pub use calibrate::{ActQuant, Calibration, Observer};
pub use error::{QuantError, Result};
pub use gptq::{Gptq, GptqConfig, GptqOutput, GptqStats, Hessian, gptq_quantize};
pub use pass::QuantizeWeights;
pub use product::{ProductConfig, ProductQuantize, ProductTensor};
pub use qat::{
    ActQat, CalibrateActivations, ConvertQat, FakeQuant, LsqActivation, LsqWeight, Pact,
    PositiveScalar, PrepareQat, WeightQat,
};
pub use scheme::{Granularity, QuantScheme, Rounding};
pub use static_ptq::{QConv2d, QLinear, StaticQuantize};
pub use tensor::QuantTensor;
