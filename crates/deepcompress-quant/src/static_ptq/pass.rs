//! [`StaticQuantize`]: calibrate activation ranges, then swap Linear and Conv2d layers for
//! their int8 versions.

use super::{QConv2d, QLinear};
use crate::calibrate::{Calibration, Observer};
use crate::error::{QuantError, Result};
use deepcompress_core::layer::{Conv2d, Layer, Linear, Mode};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use ndarray::Ix4;
use std::collections::BTreeMap;

/// Post-training static quantization (Jacob et al. 2018, arXiv 1712.05877; Krishnamoorthi
/// 2018, arXiv 1806.08342): every selected Linear and Conv2d becomes a [`QLinear`] or
/// [`QConv2d`] with per-channel int8 weights and 8-bit input and output activations whose
/// ranges come from running the float model on the context's calibration data.
///
/// Use it when a few hundred unlabelled samples are at hand and int8 accuracy is enough;
/// quantization-aware training is for lower bit widths.
///
/// ```
/// use deepcompress_core::data::Dataset;
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{Calibration, StaticQuantize};
/// use ndarray::ArrayD;
///
/// let mut model = deepcompress_core::models::lenet5(0);
/// let x = ArrayD::from_shape_fn(vec![16, 1, 28, 28], |i| ((i[2] * i[3] + i[0]) % 7) as f32 / 7.0);
/// let calib = Dataset::new(x.clone(), vec![0; 16])?;
/// let pass = StaticQuantize::new(Selector::all()).calibration(Calibration::Percentile { percent: 99.99 });
/// pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib))?;
/// assert_eq!(model.layer("conv2")?.encoding(), "int8 (w8a8)");
/// assert_eq!(model.forward(x, deepcompress_core::layer::Mode::Eval)?.shape(), &[16, 10]);
/// // Without calibration data the pass refuses and leaves the model alone.
/// let mut fresh = deepcompress_core::models::lenet5(0);
/// assert!(pass.apply(&mut fresh, &mut PassContext::new(0)).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct StaticQuantize {
    selector: Selector,
    calibration: Calibration,
    samples: usize,
    reduce_range: bool,
}

/// Calibration batch size.
const BATCH: usize = 64;

impl StaticQuantize {
    /// Quantizes the selected layers, calibrating with min-max on up to 512 samples.
    pub fn new(selector: Selector) -> Self {
        Self { selector, calibration: Calibration::MinMax, samples: 512, reduce_range: false }
    }

    /// 7-bit weight codes ([`QLinear::new_reduced_range`]): a faster integer product on
    /// AVX2 CPUs without VNNI, for twice the weight rounding error.
    pub fn reduce_range(mut self, on: bool) -> Self {
        self.reduce_range = on;
        self
    }

    /// The range-choosing method for every activation.
    pub fn calibration(mut self, c: Calibration) -> Self {
        self.calibration = c;
        self
    }

    /// How many calibration samples to use (the first ones).
    pub fn samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }

    /// Checks the parameters and returns the selected Linear and ungrouped Conv2d paths.
    fn select(&self, model: &Model) -> Result<Vec<String>> {
        self.calibration.check()?;
        if self.samples == 0 {
            return Err(QuantError::param("samples", 0, "must be positive"));
        }
        let paths: Vec<String> = model
            .select(&self.selector)?
            .into_iter()
            .filter(|p| {
                model.layer_as::<Linear>(p).is_ok()
                    || model.layer_as::<Conv2d>(p).is_ok_and(|c| c.config.groups == 1)
            })
            .collect();
        if paths.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                "matched no Linear or ungrouped Conv2d layer",
            ));
        }
        Ok(paths)
    }

    /// The integer layers for the selection, calibrated; the model is not changed.
    fn prepare(
        &self,
        model: &mut Model,
        ctx: &PassContext<'_>,
    ) -> Result<Vec<(String, Box<dyn Layer>)>> {
        let paths = self.select(model)?;
        let data = ctx.calibration.filter(|d| !d.is_empty()).ok_or_else(|| {
            QuantError::param(
                "calibration data",
                "none",
                "static quantization needs samples to calibrate on",
            )
        })?;
        let mut observers: BTreeMap<&str, (Observer, Observer)> = BTreeMap::new();
        for p in &paths {
            let o = || Observer::new(self.calibration, 8);
            observers.insert(p, (o()?, o()?));
        }
        let n = self.samples.min(data.len());
        // One copy of each layer, to compute its outputs from the captured inputs.
        let mut copies: BTreeMap<&str, Box<dyn Layer>> = BTreeMap::new();
        for p in &paths {
            copies.insert(p, model.layer(p)?.clone_box());
        }
        for start in (0..n).step_by(BATCH) {
            let idx: Vec<usize> = (start..(start + BATCH).min(n)).collect();
            let (x, _) = data.batch(&idx);
            let seen = model.capture_inputs(&paths, &x, BATCH)?;
            for p in &paths {
                let input = &seen[p.as_str()];
                let layer = copies.get_mut(p.as_str()).expect("one per path");
                let output = layer.forward(input.clone(), Mode::Eval)?;
                let (oi, oo) = observers.get_mut(p.as_str()).expect("one per path");
                let at = |e: QuantError| match e {
                    QuantError::NonFinite { .. } => {
                        QuantError::NonFinite { what: format!("activations at `{p}`") }
                    }
                    e => e,
                };
                oi.observe(input.view()).map_err(at)?;
                oo.observe(output.view()).map_err(at)?;
            }
        }
        let mut out = Vec::new();
        for p in &paths {
            let (oi, oo) = &observers[p.as_str()];
            let (qi, qo) = (oi.qparams()?, oo.qparams()?);
            let named = |e: QuantError| match e {
                QuantError::NonFinite { what } => {
                    QuantError::NonFinite { what: format!("{what} of `{p}`") }
                }
                e => e,
            };
            let layer: Box<dyn Layer> = if let Ok(fc) = model.layer_as::<Linear>(p) {
                let w = fc.weight.value().view().into_dimensionality().expect("2-D weight");
                let b = fc.bias.as_ref().map(|b| b.value().iter().copied().collect::<Vec<_>>());
                let fc = if self.reduce_range {
                    QLinear::new_reduced_range(w, b.as_deref(), qi, qo)
                } else {
                    QLinear::new(w, b.as_deref(), qi, qo)
                };
                Box::new(fc.map_err(named)?)
            } else {
                let conv = model.layer_as::<Conv2d>(p)?;
                let w =
                    conv.weight.value().view().into_dimensionality::<Ix4>().expect("4-D kernel");
                let b = conv.bias.as_ref().map(|b| b.value().iter().copied().collect::<Vec<_>>());
                let q = if self.reduce_range {
                    QConv2d::new_reduced_range(conv.config, w, b.as_deref(), qi, qo)
                } else {
                    QConv2d::new(conv.config, w, b.as_deref(), qi, qo)
                };
                Box::new(q.map_err(named)?)
            };
            out.push((p.clone(), layer));
        }
        Ok(out)
    }
}

impl Pass for StaticQuantize {
    fn name(&self) -> String {
        let weights = if self.reduce_range { "7-bit weights" } else { "int8" };
        format!("static-quantize ({weights}, {:?})", self.calibration)
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.select(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let layers = self.prepare(model, ctx).map_err(|e| e.into_core(&name))?;
        let mut report = PassReport { pass: name, ..PassReport::default() };
        for (path, layer) in layers {
            let (qi, qo) = if let Some(q) = layer.as_any().downcast_ref::<QLinear>() {
                (q.input_quant(), q.output_quant())
            } else {
                let q = layer.as_any().downcast_ref::<QConv2d>().expect("QLinear or QConv2d");
                (q.input_quant(), q.output_quant())
            };
            model.replace(&path, layer)?;
            report.notes.push(format!(
                "{path}: input range {:?}, output range {:?}",
                qi.range(),
                qo.range()
            ));
            report.layers.push(path);
        }
        Ok(report)
    }
}
