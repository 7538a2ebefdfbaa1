//! [`Gptq`]: the GPTQ pass over a model's Linear and Conv2d layers.

use super::config::GptqConfig;
use super::hessian::Hessian;
use super::solve::gptq_quantize;
use crate::error::{QuantError, Result};
use crate::scheme::{QuantScheme, Rounding};
use deepcompress_core::Param;
use deepcompress_core::layer::{CompressedConv2d, CompressedLinear, Conv2d, Layer, Linear};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use deepcompress_core::tensor::Tensor;
use ndarray::{Array1, ArrayD, Ix2, Ix4};

/// Quantizes the selected Linear and Conv2d weights with GPTQ (Frantar et al., 2022,
/// arXiv 2210.17323) on the calibration inputs of [`PassContext::calibration`], and
/// replaces each layer by a `CompressedLinear` / `CompressedConv2d` over the
/// [`QuantTensor`](crate::QuantTensor) (biases stay `f32`).
///
/// Layers are processed **sequentially in model order**: each layer's Hessian comes from
/// the inputs it receives when the layers before it are already quantized, so later
/// layers compensate for the error of earlier ones (as in the paper). This runs the
/// calibration set through the model once per selected layer.
///
/// Use it instead of [`QuantizeWeights`](crate::QuantizeWeights) at 3 or 4 bits, when a
/// few hundred calibration samples are at hand. Errors (no calibration data, NaN weights
/// or activations, bad parameters, a Hessian that damping cannot make positive definite)
/// name the layer, and leave the model unchanged.
///
/// ```
/// use deepcompress_core::data::Dataset;
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::gptq::{Gptq, GptqConfig};
/// use deepcompress_quant::QuantScheme;
/// use ndarray::ArrayD;
///
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let x = ArrayD::from_shape_fn(vec![64, 1, 28, 28], |ix| ((ix[0] * 7 + ix[2] * ix[3]) % 13) as f32 / 13.0);
/// let calib = Dataset::new(x, vec![0; 64])?;
/// let pass = Gptq::new(Selector::all(), QuantScheme::new(4), GptqConfig::default());
/// // Without calibration data the pass refuses and the model is unchanged.
/// assert!(pass.apply(&mut model, &mut PassContext::new(0)).is_err());
/// let report = pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib))?;
/// assert_eq!(report.layers, vec!["fc1", "fc2", "fc3"]);
/// assert_eq!(model.layer("fc2")?.encoding(), "int4");
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Gptq {
    selector: Selector,
    scheme: QuantScheme,
    config: GptqConfig,
    batch_size: usize,
}

impl Gptq {
    /// A pass quantizing the selected layers under `scheme` with GPTQ settings `config`.
    pub fn new(selector: Selector, scheme: QuantScheme, config: GptqConfig) -> Self {
        Self { selector, scheme, config, batch_size: 256 }
    }

    /// Samples per forward batch while collecting calibration inputs (default 256).
    pub fn batch_size(mut self, b: usize) -> Self {
        self.batch_size = b;
        self
    }

    fn check(&self) -> Result<()> {
        self.scheme.check()?;
        self.config.check()?;
        if let Rounding::Stochastic { .. } = self.scheme.rounding {
            return Err(QuantError::param(
                "rounding",
                "stochastic",
                "GPTQ rounds to nearest and corrects the error",
            ));
        }
        if self.batch_size == 0 {
            return Err(QuantError::param("batch_size", 0, "must be at least 1"));
        }
        Ok(())
    }

    /// The selected Linear and Conv2d paths, in model order, after checking their weights.
    fn targets(&self, model: &Model) -> Result<Vec<String>> {
        self.check()?;
        let selected = model.select(&self.selector)?;
        let mut out = Vec::new();
        for p in &selected {
            let w = if let Ok(fc) = model.layer_as::<Linear>(p) {
                &fc.weight
            } else if let Ok(conv) = model.layer_as::<Conv2d>(p) {
                if conv.config.groups != 1 {
                    return Err(QuantError::param(
                        format!("groups of `{p}`"),
                        conv.config.groups,
                        "GPTQ handles ungrouped convolutions only",
                    ));
                }
                &conv.weight
            } else {
                continue;
            };
            if w.value().iter().any(|v| !v.is_finite()) {
                return Err(QuantError::NonFinite { what: format!("weight of `{p}`") });
            }
            out.push(p.clone());
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

    /// Quantizes one layer of `work` (its inputs already seen through the quantized
    /// earlier layers) and swaps it in; returns a report note.
    fn quantize_layer(&self, work: &mut Model, path: &str, x: &ArrayD<f32>) -> Result<String> {
        let seen = work.capture_inputs(&[path], x, self.batch_size)?;
        let input = &seen[path];
        let bias = |b: &Option<Param>| {
            b.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>())
        };
        let shape_err = |want: &str| {
            QuantError::from(deepcompress_core::CoreError::shape(
                format!("input of `{path}`"),
                want,
                input.shape(),
            ))
        };
        let (layer, out): (Box<dyn Layer>, _) = if let Ok(fc) = work.layer_as::<Linear>(path) {
            let rows =
                input.view().into_dimensionality::<Ix2>().map_err(|_| shape_err("[batch, in]"))?;
            let h = Hessian::from_rows(rows, path)?;
            let out =
                gptq_quantize(fc.weight.value(), h.matrix().view(), &self.scheme, &self.config)?;
            let layer = CompressedLinear::new(Box::new(out.tensor.clone()), bias(&fc.bias))?;
            (Box::new(layer), out)
        } else {
            let conv = work.layer_as::<Conv2d>(path)?;
            let imgs = input
                .view()
                .into_dimensionality::<Ix4>()
                .map_err(|_| shape_err("[batch, c, h, w]"))?;
            let h = Hessian::from_conv_inputs(imgs, &conv.config, path)?;
            let out =
                gptq_quantize(conv.weight.value(), h.matrix().view(), &self.scheme, &self.config)?;
            let layer =
                CompressedConv2d::new(conv.config, Box::new(out.tensor.clone()), bias(&conv.bias))?;
            (Box::new(layer), out)
        };
        let note = format!(
            "{path}: {}, {} bits; GPTQ loss {:.4e}, {} dead inputs, damping {:.3e}",
            out.tensor.encoding(),
            out.tensor.storage_bits(),
            out.stats.loss,
            out.stats.dead_inputs,
            out.stats.damp
        );
        work.replace(path, layer)?;
        Ok(note)
    }
}

/// Names the layer in an error.
fn at_layer(e: QuantError, path: &str) -> QuantError {
    match e {
        QuantError::InvalidParam { name, value, reason } if !name.contains('`') => {
            QuantError::InvalidParam { name: format!("{name} of `{path}`"), value, reason }
        }
        QuantError::NonFinite { what } if !what.contains('`') => {
            QuantError::NonFinite { what: format!("{what} (layer `{path}`)") }
        }
        QuantError::Core(c) => QuantError::Core(c.at(path)),
        other => other,
    }
}

impl Pass for Gptq {
    fn name(&self) -> String {
        format!("gptq ({} bits)", self.scheme.bits)
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
        let run = |ctx: &mut PassContext<'_>| -> Result<(Model, PassReport)> {
            let targets = self.targets(model)?;
            let data = match ctx.calibration {
                Some(d) if !d.is_empty() => d,
                _ => {
                    return Err(QuantError::param(
                        "calibration data",
                        "empty",
                        "GPTQ needs calibration inputs (PassContext::with_calibration)",
                    ));
                }
            };
            let mut work = model.clone();
            let mut report = PassReport { pass: name.clone(), ..PassReport::default() };
            for path in targets {
                ctx.report_progress(&format!("gptq: {path}"));
                let note = self
                    .quantize_layer(&mut work, &path, &data.inputs)
                    .map_err(|e| at_layer(e, &path))?;
                report.notes.push(note);
                report.layers.push(path);
            }
            Ok((work, report))
        };
        let (work, report) = run(ctx).map_err(|e| e.into_core(&name))?;
        *model = work;
        Ok(report)
    }
}
