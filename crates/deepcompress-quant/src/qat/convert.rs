//! Building stored inference layers from trained Linear and Conv2d layers.

use crate::error::{QuantError, Result};
use deepcompress_core::Param;
use deepcompress_core::layer::{CompressedConv2d, CompressedLinear, Conv2d, Layer, Linear};
use deepcompress_core::model::Model;
use deepcompress_core::pass::PassReport;
use deepcompress_core::tensor::Tensor;
use ndarray::Array1;

/// The inference layer holding `weight` in place of the float weight of `layer` (a
/// [`Linear`] or [`Conv2d`]; the bias stays `f32`), with its storage bits; `None` for
/// other layers.
pub(crate) fn compressed(
    path: &str,
    layer: &dyn Layer,
    weight: Box<dyn Tensor>,
) -> Result<Option<(Box<dyn Layer>, u64)>> {
    let bias =
        |b: &Option<Param>| b.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>());
    let bits = |b: &Option<Array1<f32>>| {
        weight.storage_bits() + 32 * b.as_ref().map_or(0, |b| b.len() as u64)
    };
    if let Some(fc) = layer.as_any().downcast_ref::<Linear>() {
        let b = bias(&fc.bias);
        let n = bits(&b);
        let l = CompressedLinear::new(weight, b).map_err(|e| QuantError::Core(e.at(path)))?;
        Ok(Some((Box::new(l), n)))
    } else if let Some(conv) = layer.as_any().downcast_ref::<Conv2d>() {
        let b = bias(&conv.bias);
        let n = bits(&b);
        let l = CompressedConv2d::new(conv.config, weight, b)
            .map_err(|e| QuantError::Core(e.at(path)))?;
        Ok(Some((Box::new(l), n)))
    } else {
        Ok(None)
    }
}

/// The `weight` parameter of a Linear or Conv2d.
pub(crate) fn weight_param(layer: &dyn Layer) -> Option<&Param> {
    let any = layer.as_any();
    if let Some(fc) = any.downcast_ref::<Linear>() {
        Some(&fc.weight)
    } else {
        any.downcast_ref::<Conv2d>().map(|c| &c.weight)
    }
}

/// Names the layer in a non-finite error.
pub(crate) fn at_layer(e: QuantError, path: &str) -> QuantError {
    match e {
        QuantError::NonFinite { .. } => {
            QuantError::NonFinite { what: format!("weight of `{path}`") }
        }
        QuantError::InvalidParam { name, value, reason } => {
            QuantError::InvalidParam { name: format!("{name} (layer `{path}`)"), value, reason }
        }
        other => other,
    }
}

/// A layer ready to swap in: its path, the stored inference layer, its storage bits.
pub(crate) type Converted = (String, Box<dyn Layer>, u64);

/// Swaps converted layers into the model (all were built first, so nothing fails
/// half-way but an unknown path, which the builders have ruled out).
pub(crate) fn swap_in(
    model: &mut Model,
    pass: String,
    layers: Vec<Converted>,
) -> deepcompress_core::Result<PassReport> {
    let mut report = PassReport { pass, ..PassReport::default() };
    for (p, layer, bits) in layers {
        report.notes.push(format!("{p}: {}, {bits} bits with the bias", layer.encoding()));
        model.replace(&p, layer)?;
        report.layers.push(p);
    }
    Ok(report)
}
