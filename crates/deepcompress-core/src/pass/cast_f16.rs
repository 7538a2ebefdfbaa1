//! Casts Linear and Conv2d weights to half precision: a real 2x storage reduction.

use super::{Pass, PassContext, PassReport};
use crate::layer::{CompressedConv2d, CompressedLinear, Conv2d, Layer, Linear};
use crate::model::{Model, Selector};
use crate::tensor::HalfTensor;
use crate::{CoreError, Result, ensure_finite};
use ndarray::{Array1, Ix1};

/// Replaces each selected `Linear` by a [`CompressedLinear`] and each ungrouped `Conv2d` by
/// a [`CompressedConv2d`] whose weight is stored as f16 (biases stay f32). Values beyond the f16 range (±65504) are refused, since they
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
    /// Casts the `Linear` and ungrouped `Conv2d` layers the selector picks.
    pub fn new(selector: Selector) -> Self {
        Self { selector }
    }

    /// The selected layers this pass can cast, with their f32 weight and bias, checked.
    fn targets(&self, model: &Model) -> Result<Vec<String>> {
        let mut targets = Vec::new();
        for p in model.select(&self.selector)? {
            let w = if let Ok(fc) = model.layer_as::<Linear>(&p) {
                fc.weight.value()
            } else if let Ok(conv) = model.layer_as::<Conv2d>(&p) {
                if conv.config.groups != 1 {
                    continue;
                }
                conv.weight.value()
            } else {
                continue;
            };
            ensure_finite(w.iter(), &p, "weight")?;
            if let Some(v) = w.iter().find(|v| v.abs() > f32::from(half::f16::MAX)) {
                return Err(CoreError::param(
                    format!("{p}.weight"),
                    v,
                    "is outside the f16 range ±65504",
                ));
            }
            targets.push(p);
        }
        if targets.is_empty() {
            return Err(CoreError::param(
                "CastF16 selector",
                format!("{:?}", self.selector),
                "selects no Linear or ungrouped Conv2d layer",
            ));
        }
        Ok(targets)
    }
}

fn bias_of(b: &Option<crate::param::Param>) -> Option<Array1<f32>> {
    b.as_ref().map(|b| b.value().clone().into_dimensionality::<Ix1>().expect("1-D bias"))
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
            let layer: Box<dyn Layer> = if let Ok(fc) = model.layer_as::<Linear>(p) {
                let w = HalfTensor::from_f32(fc.weight.value());
                Box::new(CompressedLinear::new(Box::new(w), bias_of(&fc.bias))?)
            } else {
                let conv = model.layer_as::<Conv2d>(p)?;
                let w = HalfTensor::from_f32(conv.weight.value());
                Box::new(CompressedConv2d::new(conv.config, Box::new(w), bias_of(&conv.bias))?)
            };
            model.replace(p, layer)?;
        }
        Ok(PassReport { pass: self.name(), layers: targets, notes: vec!["biases stay f32".into()] })
    }
}
