//! [`CalibrateActivations`]: activation quantizers set from calibration data.

use super::lsq::LsqActivation;
use super::pact::Pact;
use crate::calibrate::{Calibration, Observer};
use crate::error::{QuantError, Result};
use deepcompress_core::layer::Layer;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};

/// Calibration samples per forward pass.
const BATCH: usize = 64;

/// Sets the step of every selected [`LsqActivation`] and the clipping level of every
/// selected quantizing [`Pact`] from calibration data (the context's): each quantizer's
/// input is observed with `method` at the quantizer's own bit width, and the range it
/// gives becomes the quantizer's grid (`step = hi / Qp`, or for a signed LSQ quantizer the
/// larger of `-lo / Qn` and `hi / Qp`; `α = hi`).
///
/// Quantizers are calibrated in model order, each on inputs that already pass through the
/// ones before it, so a later range sees the earlier quantization error.
///
/// Run after [`super::PrepareQat`]: without training, the model is post-training
/// quantization of weights and activations on the same quantizers that QAT would train
/// (the fair baseline for it); before training, it replaces LSQ's first-batch guess
/// `2·mean|x| / sqrt(Qp)` by a calibrated start.
///
/// Everything is computed on a copy first: no calibration data, a selector matching no
/// activation quantizer, or a quantizer whose input is all zero (no range to set) gives a
/// typed error and leaves the model unchanged.
///
/// ```
/// use deepcompress_core::data::Dataset;
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{ActQat, CalibrateActivations, Calibration, LsqActivation};
/// use deepcompress_quant::{PrepareQat, QuantScheme, WeightQat};
/// use ndarray::Array2;
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// PrepareQat::new(Selector::all(), WeightQat::FakeQuant(QuantScheme::new(4)))
///     .activations(ActQat::Lsq { bits: 4 })
///     .apply(&mut model, &mut PassContext::new(0))?;
/// let x = Array2::from_shape_fn((32, 784), |(i, j)| ((i * 7 + j) % 13) as f32 / 13.0);
/// let calib = Dataset::new(x.into_dyn(), vec![0; 32])?;
/// let mut ctx = PassContext::new(0).with_calibration(&calib);
/// CalibrateActivations::new(Selector::all(), Calibration::MinMax).apply(&mut model, &mut ctx)?;
/// assert!(model.layer_as::<LsqActivation>("relu1")?.step() > 0.0);
/// // Without calibration data nothing changes.
/// let before = model.state_dict();
/// let pass = CalibrateActivations::new(Selector::all(), Calibration::Mse);
/// assert!(pass.apply(&mut model, &mut PassContext::new(0)).is_err());
/// assert_eq!(model.state_dict(), before);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrateActivations {
    selector: Selector,
    method: Calibration,
    samples: usize,
}

impl CalibrateActivations {
    /// Calibrates the selected activation quantizers with `method` on the first 512
    /// calibration samples.
    pub fn new(selector: Selector, method: Calibration) -> Self {
        Self { selector, method, samples: 512 }
    }

    /// How many calibration samples to use (the first ones).
    pub fn samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }

    /// The selected quantizers, in model order, with their bit widths.
    fn select(&self, model: &Model) -> Result<Vec<(String, u8)>> {
        self.method.check()?;
        if self.samples == 0 {
            return Err(QuantError::param("samples", 0, "must be positive"));
        }
        let mut out = Vec::new();
        for p in model.select(&self.selector)? {
            if let Ok(l) = model.layer_as::<LsqActivation>(&p) {
                out.push((p, l.bits()));
            } else if let Some(bits) = model.layer_as::<Pact>(&p).ok().and_then(|l| l.bits()) {
                out.push((p, bits));
            }
        }
        if out.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                "matched no LsqActivation or quantizing Pact layer",
            ));
        }
        Ok(out)
    }

    /// The calibrated quantizers; the model is not changed.
    fn prepare(
        &self,
        model: &Model,
        ctx: &PassContext<'_>,
    ) -> Result<Vec<(String, Box<dyn Layer>)>> {
        let selected = self.select(model)?;
        let data = ctx.calibration.filter(|d| !d.is_empty()).ok_or_else(|| {
            QuantError::param("calibration data", "none", "activation calibration needs samples")
        })?;
        let n = self.samples.min(data.len());
        let mut copy = model.clone();
        let mut out = Vec::new();
        for (p, bits) in selected {
            let mut observer = Observer::new(self.method, bits)?;
            let signed = copy.layer_as::<LsqActivation>(&p).is_ok_and(|l| l.signed());
            for start in (0..n).step_by(BATCH) {
                let idx: Vec<usize> = (start..(start + BATCH).min(n)).collect();
                let (x, _) = data.batch(&idx);
                let seen = copy.capture_inputs(&[p.as_str()], &x, BATCH)?;
                let input = &seen[p.as_str()];
                let observed = if signed { input.clone() } else { input.mapv(|v| v.max(0.0)) };
                observer.observe(observed.view()).map_err(|e| match e {
                    QuantError::NonFinite { .. } => {
                        QuantError::NonFinite { what: format!("activations at `{p}`") }
                    }
                    e => e,
                })?;
            }
            let (lo, hi) = observer.range()?;
            let layer = calibrated(copy.layer(&p)?, lo, hi).map_err(|e| match e {
                QuantError::InvalidParam { name, value, reason } => QuantError::InvalidParam {
                    name: format!("{name} (layer `{p}`)"),
                    value,
                    reason,
                },
                e => e,
            })?;
            copy.replace(&p, layer.clone_box())?;
            out.push((p, layer));
        }
        Ok(out)
    }
}

/// The quantizer `layer` with its grid set to cover `[lo, hi]`.
fn calibrated(layer: &dyn Layer, lo: f32, hi: f32) -> Result<Box<dyn Layer>> {
    if !(hi > 0.0 || lo < 0.0) {
        return Err(QuantError::param(
            "calibrated range",
            format!("[{lo}, {hi}]"),
            "is empty: the quantizer's input was zero on every calibration sample",
        ));
    }
    if let Some(l) = layer.as_any().downcast_ref::<LsqActivation>() {
        let (qn, qp) = l.levels();
        let step = if l.signed() { (-lo / qn as f32).max(hi / qp as f32) } else { hi / qp as f32 };
        return Ok(Box::new(l.clone().with_step(step)?));
    }
    let p = layer.as_any().downcast_ref::<Pact>().expect("selected as LsqActivation or Pact");
    Ok(Box::new(p.clone().with_alpha(hi)?))
}

impl Pass for CalibrateActivations {
    fn name(&self) -> String {
        "calibrate-activations".into()
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
        for (p, layer) in layers {
            report.notes.push(format!("{p}: {} calibrated", layer.kind()));
            model.replace(&p, layer)?;
            report.layers.push(p);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qat::{ActQat, PrepareQat, WeightQat};
    use crate::scheme::QuantScheme;
    use deepcompress_core::data::Dataset;
    use ndarray::Array2;

    fn prepared(act: ActQat) -> Model {
        let mut model = deepcompress_core::models::lenet_300_100(3);
        PrepareQat::new(Selector::all(), WeightQat::FakeQuant(QuantScheme::new(4)))
            .activations(act)
            .apply(&mut model, &mut PassContext::new(0))
            .expect("prepares");
        model
    }

    fn data(n: usize) -> Dataset {
        let x = Array2::from_shape_fn((n, 784), |(i, j)| ((i * 31 + j * 7) % 29) as f32 / 29.0);
        Dataset::new(x.into_dyn(), vec![0; n]).expect("one label per sample")
    }

    /// The largest non-negative input of `path` on the whole set.
    fn max_input(model: &Model, path: &str, d: &Dataset) -> f32 {
        let (x, _) = d.batch(&(0..d.len()).collect::<Vec<_>>());
        let seen = model.clone().capture_inputs(&[path], &x, 64).expect("captures");
        seen[path].iter().fold(0.0f32, |m, &v| m.max(v))
    }

    #[test]
    fn min_max_sets_each_lsq_step_to_the_range_over_its_levels_in_model_order() {
        let d = data(100);
        let mut model = prepared(ActQat::Lsq { bits: 4 });
        let mut ctx = PassContext::new(0).with_calibration(&d);
        let report = CalibrateActivations::new(Selector::all(), Calibration::MinMax)
            .apply(&mut model, &mut ctx)
            .expect("calibrates");
        assert_eq!(report.layers, vec!["relu1".to_string(), "relu2".to_string()]);
        // relu1's input does not depend on any quantizer; relu2's passes through relu1,
        // already calibrated, so recomputing it on the final model gives the same range.
        for p in ["relu1", "relu2"] {
            let step = model.layer_as::<LsqActivation>(p).expect("still LSQ").step();
            let want = max_input(&model, p, &d) / 15.0;
            assert!((step - want).abs() <= 1e-6 * want, "{p}: {step} vs {want}");
        }
    }

    #[test]
    fn pact_clipping_level_is_the_calibrated_upper_end() {
        let d = data(64);
        let mut model = prepared(ActQat::Pact { bits: 3, alpha: 10.0, l2: 0.0 });
        let mut ctx = PassContext::new(0).with_calibration(&d);
        CalibrateActivations::new(Selector::all(), Calibration::MinMax)
            .apply(&mut model, &mut ctx)
            .expect("calibrates");
        let alpha = model.layer_as::<Pact>("relu1").expect("still PACT").alpha();
        let want = max_input(&model, "relu1", &d);
        assert!((alpha - want).abs() <= 1e-6 * want, "{alpha} vs {want}");
        // MSE clipping at 3 bits cuts the largest values off.
        let mut mse = prepared(ActQat::Pact { bits: 3, alpha: 10.0, l2: 0.0 });
        CalibrateActivations::new(Selector::all(), Calibration::Mse)
            .apply(&mut mse, &mut ctx)
            .expect("calibrates");
        assert!(mse.layer_as::<Pact>("relu1").expect("PACT").alpha() < alpha);
    }

    #[test]
    fn bad_requests_leave_the_model_unchanged() {
        let d = data(16);
        let mut model = prepared(ActQat::Lsq { bits: 4 });
        let before = model.state_dict();
        let pass = CalibrateActivations::new(Selector::all(), Calibration::MinMax);
        // No calibration data, or no quantizer selected, or zero samples.
        assert!(pass.apply(&mut model, &mut PassContext::new(0)).is_err());
        let mut ctx = PassContext::new(0).with_calibration(&d);
        let none = CalibrateActivations::new(Selector::path("fc1"), Calibration::MinMax);
        assert!(none.apply(&mut model, &mut ctx).is_err());
        assert!(pass.clone().samples(0).apply(&mut model, &mut ctx).is_err());
        assert_eq!(model.state_dict(), before);
        // A quantizer that only ever sees zeros has no range to set: zero images and a
        // zero bias give relu1 zero inputs.
        let linear = model.layer_mut("fc1").expect("fc1").as_any_mut();
        let fc1 = linear.downcast_mut::<deepcompress_core::layer::Linear>().expect("Linear");
        let bias = fc1.bias.as_mut().expect("has a bias");
        bias.set_value(ndarray::ArrayD::zeros(bias.value().raw_dim()));
        let before = model.state_dict();
        let zeros = Dataset::new(ndarray::ArrayD::zeros(vec![8, 784]), vec![0; 8]).expect("data");
        let mut ctx = PassContext::new(0).with_calibration(&zeros);
        let err = pass.apply(&mut model, &mut ctx).expect_err("no range");
        assert!(err.to_string().contains("relu1"), "{err}");
        assert_eq!(model.state_dict(), before);
    }
}
