//! The layers whose weights the unstructured passes work on: `Linear` and `Conv2d`.

use crate::{PruneError, Result};
use deepcompress_core::layer::{Conv2d, Linear};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::param::Param;

/// The kind of a weight layer, which picks defaults (index bits, codebook size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightKind {
    /// A fully connected layer.
    Linear,
    /// A convolution.
    Conv2d,
}

/// The `Linear` and `Conv2d` layers `selector` picks, in model order; an error when
/// there are none, or when one holds NaN or infinity.
pub(crate) fn weight_layers(
    model: &Model,
    selector: &Selector,
) -> Result<Vec<(String, WeightKind)>> {
    let selected = model.select(selector)?;
    let mut out = Vec::new();
    for p in &selected {
        let kind = if model.layer_as::<Linear>(p).is_ok() {
            WeightKind::Linear
        } else if model.layer_as::<Conv2d>(p).is_ok() {
            WeightKind::Conv2d
        } else {
            continue;
        };
        let w = weight(model, p)?;
        crate::error::check_finite(
            w.value().as_slice().unwrap_or(&w.value().iter().copied().collect::<Vec<_>>()),
            &format!("{p}.weight"),
        )?;
        out.push((p.clone(), kind));
    }
    if out.is_empty() {
        let hint = if selected.is_empty() {
            String::new()
        } else {
            format!(" (it matched {})", selected.join(", "))
        };
        return Err(PruneError::NothingSelected { what: "Linear or Conv2d".into(), hint });
    }
    Ok(out)
}

/// The weight parameter of the `Linear` or `Conv2d` at `path`.
pub(crate) fn weight<'a>(model: &'a Model, path: &str) -> Result<&'a Param> {
    if let Ok(fc) = model.layer_as::<Linear>(path) {
        return Ok(&fc.weight);
    }
    if let Ok(conv) = model.layer_as::<Conv2d>(path) {
        return Ok(&conv.weight);
    }
    let kind = model.layer(path)?.kind();
    Err(PruneError::Unsupported {
        path: path.into(),
        kind: kind.into(),
        reason: "has no prunable weight (Linear or Conv2d expected)".into(),
    })
}

/// Mutable [`weight`].
pub(crate) fn weight_mut<'a>(model: &'a mut Model, path: &str) -> Result<&'a mut Param> {
    let layer = model.layer_mut(path)?;
    let kind = layer.kind();
    if layer.as_any().is::<Linear>() {
        return Ok(&mut layer.as_any_mut().downcast_mut::<Linear>().expect("checked").weight);
    }
    if layer.as_any().is::<Conv2d>() {
        return Ok(&mut layer.as_any_mut().downcast_mut::<Conv2d>().expect("checked").weight);
    }
    Err(PruneError::Unsupported {
        path: path.into(),
        kind: kind.into(),
        reason: "has no prunable weight (Linear or Conv2d expected)".into(),
    })
}

/// The inference layer that replaces the `Linear` or `Conv2d` at `path` with `weight`
/// (a compressed encoding of its weight) and its f32 bias.
pub(crate) fn compressed_layer(
    model: &Model,
    path: &str,
    weight: Box<dyn deepcompress_core::tensor::Tensor>,
) -> Result<Box<dyn deepcompress_core::layer::Layer>> {
    use deepcompress_core::layer::{CompressedConv2d, CompressedLinear};
    let bias = |b: &Option<Param>| {
        b.as_ref().map(|b| b.value().iter().copied().collect::<ndarray::Array1<f32>>())
    };
    if let Ok(fc) = model.layer_as::<Linear>(path) {
        return Ok(Box::new(
            CompressedLinear::new(weight, bias(&fc.bias)).map_err(|e| e.at(path))?,
        ));
    }
    let conv = model.layer_as::<Conv2d>(path)?;
    Ok(Box::new(
        CompressedConv2d::new(conv.config, weight, bias(&conv.bias)).map_err(|e| e.at(path))?,
    ))
}
