//! [`TernaryWeights`]: Ternary Weight Networks' threshold and scale as a constraint.

use super::binary_connect::blocks;
use super::tensor::TernaryTensor;
use crate::error::{QuantError, Result};
use deepcompress_core::Constraint;
use deepcompress_core::tensor::Tensor;
use ndarray::ArrayD;
use std::any::Any;

/// Ternary Weight Networks (Li, Zhang and Liu 2016, "Ternary Weight Networks",
/// arXiv 1605.04711): the forward pass uses `α · t` with `t = sign(w)` where
/// `|w| > Δ` and 0 elsewhere, the threshold `Δ = 0.7 · mean|W|` (the paper's
/// approximation of the optimal threshold for Gaussian or uniform weights) and
/// `α = mean(|w| : |w| > Δ)`, recomputed from the full-precision weights at every
/// forward pass, per layer (the paper) or per output channel. The optimizer updates the
/// full-precision weights with the gradient of the ternary ones (straight-through).
///
/// Use it for 2-bit weights (16x smaller than f32) when binary weights lose too much:
/// the zero state makes ternary networks markedly more accurate at a similar cost.
///
/// ```
/// use deepcompress_core::Param;
/// use deepcompress_quant::TernaryWeights;
/// use ndarray::array;
/// let mut p = Param::new(array![[0.9f32, -0.1, 0.05, -1.1]].into_dyn());
/// p.set_constraint(Box::new(TernaryWeights::new(0.7, false)?));
/// // Δ = 0.7 · 0.5375 = 0.376; α = (0.9 + 1.1) / 2 = 1
/// let w = p.effective().into_owned();
/// let expected = array![[1.0f32, 0.0, 0.0, -1.0]].into_dyn();
/// assert!(w.iter().zip(expected.iter()).all(|(a, b)| (a - b).abs() < 1e-6));
/// assert!(TernaryWeights::new(f32::NAN, false).is_err());
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TernaryWeights {
    factor: f32,
    per_channel: bool,
}

impl TernaryWeights {
    /// Threshold `factor · mean|W|` (the paper's 0.7; `0 <= factor < 3`), per layer or
    /// per output channel.
    pub fn new(factor: f32, per_channel: bool) -> Result<Self> {
        if !(factor.is_finite() && (0.0..3.0).contains(&factor)) {
            return Err(QuantError::param("TWN threshold factor", factor, "must be in [0, 3)"));
        }
        Ok(Self { factor, per_channel })
    }

    /// The stored tensor: exactly the ternary values and scales of the forward pass.
    /// Errors on NaN or infinite weights.
    pub fn ternarize(&self, w: &ArrayD<f32>) -> Result<TernaryTensor> {
        if w.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: "the weight to ternarize".into() });
        }
        let (cols, count) = blocks(w.shape(), self.per_channel);
        let data: Vec<f32> = w.iter().copied().collect();
        let mut values = vec![0i8; data.len()];
        let mut scales = Vec::with_capacity(count);
        for b in 0..count {
            let range = b * cols..((b + 1) * cols).min(data.len());
            let s = &data[range.clone()];
            let delta =
                self.factor * s.iter().map(|v| v.abs()).sum::<f32>() / s.len().max(1) as f32;
            let (mut sum, mut n) = (0.0f32, 0usize);
            for (t, &v) in values[range].iter_mut().zip(s) {
                if v.abs() > delta {
                    *t = if v > 0.0 { 1 } else { -1 };
                    sum += v.abs();
                    n += 1;
                }
            }
            scales.push(if n == 0 { 0.0 } else { sum / n as f32 });
        }
        TernaryTensor::new(w.shape(), &values, scales)
    }
}

impl Constraint for TernaryWeights {
    fn name(&self) -> &'static str {
        "ternary"
    }

    fn forward_value(&self, master: &ArrayD<f32>) -> Option<ArrayD<f32>> {
        self.ternarize(master).ok().map(|t| t.to_dense())
    }

    fn project(&mut self, _value: &mut ArrayD<f32>) {}

    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
