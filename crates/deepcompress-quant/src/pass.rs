//! [`QuantizeWeights`]: weight-only post-training quantization of Linear and Conv2d layers.

use crate::error::{QuantError, Result};
use crate::scheme::QuantScheme;
use crate::tensor::QuantTensor;
use deepcompress_core::Param;
use deepcompress_core::layer::{CompressedConv2d, CompressedLinear, Conv2d, Layer, Linear};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use deepcompress_core::tensor::Tensor;
use ndarray::Array1;

/// Replaces each selected Linear and Conv2d by an inference layer whose weight is a
/// [`QuantTensor`] (round to nearest; biases stay `f32`). The model's summary and the
/// facade's report then count the packed size exactly.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{QuantScheme, QuantizeWeights};
///
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let before = model.summary(&[1, 784])?.total().storage_bits;
/// QuantizeWeights::new(Selector::all(), QuantScheme::new(8)).apply(&mut model, &mut PassContext::new(0))?;
/// let after = model.summary(&[1, 784])?.total().storage_bits;
/// assert!(after * 3 < before); // 8-bit codes, f32 per-channel scales and biases
/// assert_eq!(model.layer("fc1")?.encoding(), "int8");
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeWeights {
    selector: Selector,
    scheme: QuantScheme,
}

/// One layer ready to swap in: its path, the inference layer and its storage bits.
type Quantized = (String, Box<dyn Layer>, u64);

impl QuantizeWeights {
    /// A pass quantizing the selected layers' weights under `scheme`.
    pub fn new(selector: Selector, scheme: QuantScheme) -> Self {
        Self { selector, scheme }
    }

    /// The selected Linear and Conv2d layers, quantized; the model is not changed.
    fn prepare(&self, model: &Model) -> Result<Vec<Quantized>> {
        self.scheme.check()?;
        let selected = model.select(&self.selector)?;
        let bias = |b: &Option<Param>| {
            b.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>())
        };
        let mut out = Vec::new();
        for p in &selected {
            let quantize = |w: &Param| {
                QuantTensor::quantize(w.value(), &self.scheme).map_err(|e| match e {
                    QuantError::NonFinite { .. } => {
                        QuantError::NonFinite { what: format!("weight of `{p}`") }
                    }
                    other => other,
                })
            };
            let (layer, bits): (Box<dyn Layer>, u64) = if let Ok(fc) = model.layer_as::<Linear>(p) {
                let q = quantize(&fc.weight)?;
                let b = bias(&fc.bias);
                let bits = q.storage_bits() + 32 * b.as_ref().map_or(0, |b| b.len() as u64);
                (Box::new(CompressedLinear::new(Box::new(q), b).map_err(|e| e.at(p))?), bits)
            } else if let Ok(conv) = model.layer_as::<Conv2d>(p) {
                let q = quantize(&conv.weight)?;
                let b = bias(&conv.bias);
                let bits = q.storage_bits() + 32 * b.as_ref().map_or(0, |b| b.len() as u64);
                let layer =
                    CompressedConv2d::new(conv.config, Box::new(q), b).map_err(|e| e.at(p))?;
                (Box::new(layer), bits)
            } else {
                continue;
            };
            out.push((p.clone(), layer, bits));
        }
        if out.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                format!("matched no Linear or Conv2d layer (it matched {selected:?})"),
            ));
        }
        Ok(out)
    }
}

impl Pass for QuantizeWeights {
    fn name(&self) -> String {
        format!("quantize-weights ({} bits)", self.scheme.bits)
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.prepare(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        _ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let layers = self.prepare(model).map_err(|e| e.into_core(&name))?;
        let mut report = PassReport { pass: name, ..PassReport::default() };
        for (path, layer, bits) in layers {
            let encoding = layer.encoding();
            model.replace(&path, layer)?;
            report.notes.push(format!("{path}: {encoding}, {bits} bits with the bias"));
            report.layers.push(path);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_leave_the_model_unchanged() {
        let mut model = deepcompress_core::models::lenet5(0);
        let before = format!("{model:?}");
        for pass in [
            QuantizeWeights::new(Selector::all(), QuantScheme::new(1)),
            QuantizeWeights::new(Selector::path("pool*"), QuantScheme::new(8)),
        ] {
            assert!(pass.apply(&mut model, &mut PassContext::new(0)).is_err());
            assert_eq!(format!("{model:?}"), before);
        }
        if let Ok(slot) = model.layer_mut("conv2") {
            let conv = slot.as_any_mut().downcast_mut::<Conv2d>().expect("conv");
            conv.weight.value_mut()[[0, 0, 0, 0]] = f32::INFINITY;
        }
        let e = QuantizeWeights::new(Selector::all(), QuantScheme::new(8))
            .apply(&mut model, &mut PassContext::new(0))
            .unwrap_err();
        assert!(e.to_string().contains("conv2"), "{e}");
        assert!(model.layer_as::<Conv2d>("conv1").is_ok());
    }
}
