//! Casts Linear weights to half precision: a real 2x storage reduction.

use super::{Pass, PassContext, PassReport};
use crate::layer::{CompressedLinear, Linear};
use crate::model::{Model, Selector};
use crate::tensor::HalfTensor;
use crate::{CoreError, Result, ensure_finite};
use ndarray::Ix1;

/// Replaces each selected `Linear` by a [`CompressedLinear`] whose weight is stored as
/// f16 (biases stay f32). Values beyond the f16 range (±65504) are refused, since they
/// would become infinite.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{CastF16, Pass, PassContext};
/// let mut m = deepcompress_core::models::lenet_300_100(0);
/// let before = m.summary(&[1, 784]).unwrap().total().storage_bits;
/// CastF16::new(Selector::path("fc1")).apply(&mut m, &mut PassContext::new(0)).unwrap();
/// let after = m.summary(&[1, 784]).unwrap().total().storage_bits;
/// assert_eq!(before - after, 784 * 300 * 16);
/// ```
#[derive(Debug, Clone)]
pub struct CastF16 {
    selector: Selector,
}

impl CastF16 {
    /// Casts the `Linear` layers the selector picks.
    pub fn new(selector: Selector) -> Self {
        Self { selector }
    }

    fn targets(&self, model: &Model) -> Result<Vec<String>> {
        let paths = model.select(&self.selector)?;
        let linear: Vec<String> =
            paths.into_iter().filter(|p| model.layer_as::<Linear>(p).is_ok()).collect();
        if linear.is_empty() {
            return Err(CoreError::param(
                "CastF16 selector",
                format!("{:?}", self.selector),
                "selects no Linear layer",
            ));
        }
        for p in &linear {
            let w = model.layer_as::<Linear>(p)?.weight.value();
            ensure_finite(w.iter(), p, "weight")?;
            if let Some(v) = w.iter().find(|v| v.abs() > f32::from(half::f16::MAX)) {
                return Err(CoreError::param(
                    format!("{p}.weight"),
                    v,
                    "is outside the f16 range ±65504",
                ));
            }
        }
        Ok(linear)
    }
}

impl Pass for CastF16 {
    fn name(&self) -> String {
        "cast-f16".to_string()
    }

    fn validate(&self, model: &Model) -> Result<()> {
        self.targets(model).map(|_| ())
    }

    fn apply(&self, model: &mut Model, ctx: &mut PassContext<'_>) -> Result<PassReport> {
        // Every check happens in `targets`, before the first replacement.
        let targets = self.targets(model)?;
        for p in &targets {
            ctx.report_progress(&format!("cast-f16: {p}"));
            let fc = model.layer_as::<Linear>(p)?;
            let w = HalfTensor::from_f32(fc.weight.value());
            let b = fc
                .bias
                .as_ref()
                .map(|b| b.value().clone().into_dimensionality::<Ix1>().expect("1-D bias"));
            let layer = CompressedLinear::new(Box::new(w), b)?;
            model.replace(p, Box::new(layer))?;
        }
        Ok(PassReport { pass: self.name(), layers: targets, notes: vec!["biases stay f32".into()] })
    }
}
