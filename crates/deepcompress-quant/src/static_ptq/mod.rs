//! Post-training static quantization: int8 weights and activations, calibrated ranges,
//! integer inference layers.

mod pass;
mod product;
mod qconv2d;
mod qlinear;
mod requant;

pub use pass::StaticQuantize;
pub use qconv2d::QConv2d;
pub use qlinear::QLinear;

use deepcompress_core::CoreError;
use deepcompress_core::layer::LayerCost;
use ndarray::Array1;
use product::Int8Product;

/// The cost of an integer layer for `columns` output positions.
fn cost(p: &Int8Product, bias: Option<&Array1<f32>>, columns: u64) -> LayerCost {
    let (out, k) = p.weight.dim();
    let weights = (out * k) as u64;
    let nonzeros = p.weight.codes().iter().filter(|c| **c != 0).count() as u64
        + bias.map_or(0, |b| b.iter().filter(|v| **v != 0.0).count() as u64);
    LayerCost {
        params: weights + bias.map_or(0, |b| b.len() as u64),
        nonzeros,
        storage_bits: p.storage_bits(),
        macs: columns * weights,
    }
}

/// The error of calling backward on an integer inference layer.
fn inference_only(layer: &str) -> CoreError {
    CoreError::param(
        format!("{layer} backward"),
        "called",
        "integer layers are for inference; train with quantization-aware training first",
    )
}
