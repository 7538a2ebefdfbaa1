//! GPTQ: data-aware rounding of weights (Frantar, Ashkboos, Hoefler and Alistarh, "GPTQ:
//! Accurate Post-Training Quantization for Generative Pre-trained Transformers", 2022,
//! arXiv 2210.17323).
//!
//! Round-to-nearest minimises each weight's own error; GPTQ minimises the layer's output
//! error `||W X - Q X||²_F` on calibration inputs `X`. It quantizes one input column at a
//! time and moves the rounding error onto the columns not yet quantized, in proportion to
//! how the inputs correlate (the Optimal Brain Quantizer update, read from the upper
//! Cholesky factor of `H⁻¹`, `H = 2 X Xᵀ / n`), with damping, lazy batch updates,
//! optional act-order and groups along the input dimension.
//!
//! * [`Hessian`] accumulates `H` from Linear inputs or Conv2d im2col patches;
//! * [`gptq_quantize`] is the solver: weight + Hessian + [`GptqConfig`] -> a
//!   [`QuantTensor`](crate::QuantTensor) with the crate's exact packed storage;
//! * [`Gptq`] is the pass over a model, layer after layer in model order.
//!
//! Use it for 3- and 4-bit weights after training, when a few hundred calibration samples
//! are available; at 8 bits round-to-nearest ([`QuantizeWeights`](crate::QuantizeWeights))
//! is already as good.
//!
//! ```
//! use deepcompress_quant::gptq::{GptqConfig, Hessian, gptq_quantize};
//! use deepcompress_quant::{Granularity, QuantScheme};
//! use ndarray::Array2;
//!
//! let x = Array2::from_shape_fn((128, 64), |(n, j)| (((n * 31 + j * 17) % 23) as f32 - 11.0) / 11.0);
//! let w = Array2::from_shape_fn((32, 64), |(i, j)| (((i * 13 + j * 7) % 19) as f32 - 9.0) / 9.0);
//! let h = Hessian::from_rows(x.view(), "fc")?;
//! let scheme = QuantScheme::new(4).granularity(Granularity::PerGroup { rows: 1, cols: 32 });
//! let out = gptq_quantize(&w.into_dyn(), h.matrix().view(), &scheme, &GptqConfig::default().act_order(true))?;
//! assert_eq!(out.tensor.scales().len(), 32 * 2);
//! # Ok::<(), deepcompress_quant::QuantError>(())
//! ```

mod config;
mod hessian;
mod inverse;
mod pass;
mod solve;

pub use config::GptqConfig;
pub use hessian::Hessian;
pub use pass::Gptq;
pub use solve::{GptqOutput, GptqStats, gptq_quantize};
