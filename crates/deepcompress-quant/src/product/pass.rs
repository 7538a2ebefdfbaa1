//! [`ProductQuantize`]: product quantization of a model's Linear layers.

use super::config::ProductConfig;
use super::tensor::ProductTensor;
use crate::error::{QuantError, Result};
use deepcompress_core::layer::{CompressedLinear, Layer, Linear};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use deepcompress_core::tensor::Tensor;
use ndarray::{Array1, Ix2};

/// A layer ready to swap in: its path, the new layer and a report note.
type Replacement = (String, Box<dyn Layer>, String);

/// Replaces each selected Linear by a `CompressedLinear` over a [`ProductTensor`]
/// (Gong et al., 2014, arXiv 1412.6115; biases stay `f32`). Other selected layers are
/// skipped with a note; a selection without Linear layers, a `d` that does not divide a
/// layer's input dimension, or NaN weights are errors that name the layer and leave the
/// model unchanged. Layer `i` of the selection uses seed `ctx.seed + i`.
///
/// Use it on large fully connected layers for 1 to 2 bits per weight without data.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::product::{ProductConfig, ProductQuantize};
///
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let before = model.summary(&[1, 784])?.total().storage_bits;
/// ProductQuantize::new(Selector::path("fc1"), ProductConfig::new(8, 16)).apply(&mut model, &mut PassContext::new(0))?;
/// assert_eq!(model.layer("fc1")?.encoding(), "pq");
/// assert!(model.summary(&[1, 784])?.total().storage_bits * 5 < before);
/// // d = 7 does not divide fc2's 300 inputs: refused, and nothing changes.
/// let snapshot = format!("{model:?}");
/// assert!(ProductQuantize::new(Selector::path("fc2"), ProductConfig::new(7, 16)).apply(&mut model, &mut PassContext::new(0)).is_err());
/// assert_eq!(format!("{model:?}"), snapshot);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProductQuantize {
    selector: Selector,
    config: ProductConfig,
}

impl ProductQuantize {
    /// A pass product-quantizing the selected Linear layers under `config`.
    pub fn new(selector: Selector, config: ProductConfig) -> Self {
        Self { selector, config }
    }

    /// The selected Linear layers and the skipped others; checks everything but k-means.
    fn targets(&self, model: &Model) -> Result<(Vec<String>, Vec<String>)> {
        self.config.check()?;
        let selected = model.select(&self.selector)?;
        let (mut linear, mut skipped) = (Vec::new(), Vec::new());
        for p in selected {
            let Ok(fc) = model.layer_as::<Linear>(&p) else {
                if model.layer(&p)?.children().is_empty() {
                    skipped.push(p);
                }
                continue;
            };
            if fc.in_features() % self.config.dim != 0 {
                return Err(QuantError::param(
                    format!("sub-vector dimension d for `{p}`"),
                    self.config.dim,
                    format!("must divide its {} inputs", fc.in_features()),
                ));
            }
            if fc.weight.value().iter().any(|v| !v.is_finite()) {
                return Err(QuantError::NonFinite { what: format!("weight of `{p}`") });
            }
            linear.push(p);
        }
        if linear.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                "matched no Linear layer",
            ));
        }
        Ok((linear, skipped))
    }
}

impl Pass for ProductQuantize {
    fn name(&self) -> String {
        format!("product-quantize (d = {}, k = {})", self.config.dim, self.config.centroids)
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.targets(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let build = || -> Result<(Vec<Replacement>, Vec<String>)> {
            let (paths, skipped) = self.targets(model)?;
            let mut out = Vec::new();
            for (i, p) in paths.into_iter().enumerate() {
                let fc = model.layer_as::<Linear>(&p)?;
                let w = fc.weight.value().view().into_dimensionality::<Ix2>().map_err(|_| {
                    deepcompress_core::CoreError::shape(
                        p.clone(),
                        "[out, in]",
                        fc.weight.value().shape(),
                    )
                })?;
                let t = ProductTensor::quantize(w, &self.config, ctx.seed.wrapping_add(i as u64))?;
                let bias =
                    fc.bias.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>());
                let note = format!(
                    "{p}: pq, {} centroids of {} weights, {}-bit codes, {} bits",
                    t.centroids(),
                    t.dim(),
                    t.code_bits(),
                    t.storage_bits()
                );
                let layer = CompressedLinear::new(Box::new(t), bias).map_err(|e| e.at(&p))?;
                out.push((p, Box::new(layer) as Box<dyn Layer>, note));
            }
            Ok((out, skipped))
        };
        let (layers, skipped) = build().map_err(|e| e.into_core(&name))?;
        let mut report = PassReport { pass: name, ..PassReport::default() };
        for (path, layer, note) in layers {
            model.replace(&path, layer)?;
            report.notes.push(note);
            report.layers.push(path);
        }
        if !skipped.is_empty() {
            report.notes.push(format!("skipped (not Linear): {}", skipped.join(", ")));
        }
        Ok(report)
    }
}
