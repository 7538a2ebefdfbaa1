//! [`BinaryConnect`]: sign weights in the forward pass with real-valued shadow weights.

use super::tensor::BinaryTensor;
use crate::error::{QuantError, Result};
use deepcompress_core::Constraint;
use deepcompress_core::tensor::Tensor;
use ndarray::ArrayD;
use serde::Serialize;
use std::any::Any;

/// The scale of a binary or ternary weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BinaryScale {
    /// No scale: weights are exactly ±1 (BinaryConnect as published; needs batch norm or
    /// inputs scaled to suit).
    None,
    /// One scale for the layer.
    PerTensor,
    /// One scale per output channel (XNOR-Net, Rastegari et al. 2016, arXiv 1603.05279).
    PerChannel,
}

/// `(elements per scale, scale count)` of a `[shape[0], rest]` view.
pub(crate) fn blocks(shape: &[usize], per_channel: bool) -> (usize, usize) {
    let n: usize = shape.iter().product();
    let rows = shape.first().copied().unwrap_or(1).max(1);
    if per_channel && shape.len() > 1 { (n / rows, rows) } else { (n.max(1), 1) }
}

/// BinaryConnect (Courbariaux, Bengio and David 2015, "BinaryConnect: Training Deep
/// Neural Networks with binary weights during propagations", arXiv 1511.00363): the
/// forward and backward passes use `α · sign(w)` (`sign(0) = +1`), the optimizer updates
/// real-valued shadow weights with that gradient unchanged (straight-through estimator),
/// and the shadow weights are clipped to `[-1, 1]` after every step so that they stay
/// where a sign flip is reachable. With [`BinaryScale::PerChannel`], `α_c = mean|W_c|`
/// per output channel as in XNOR-Net (Rastegari et al. 2016, arXiv 1603.05279), which
/// keeps the layer's output scale and makes plain networks without batch norm trainable.
///
/// Use it for 1-bit weights (32x smaller than f32, multiplication-free products); expect
/// a larger accuracy cost than ternary or 4-bit weights.
///
/// ```
/// use deepcompress_core::Param;
/// use deepcompress_quant::{BinaryConnect, BinaryScale};
/// use ndarray::array;
/// let mut p = Param::new(array![[0.5f32, -0.25, 3.0], [-0.2, -0.4, 0.0]].into_dyn());
/// p.set_constraint(Box::new(BinaryConnect::new(BinaryScale::PerChannel)));
/// assert_eq!(p.value()[[0, 2]], 1.0); // shadow weight clipped to [-1, 1]
/// // α = mean|W_c| of the clipped shadow weights: 0.5833.. and 0.2
/// let w = p.effective().into_owned();
/// assert!((w[[0, 0]] - 1.75 / 3.0).abs() < 1e-6 && (w[[0, 1]] + 1.75 / 3.0).abs() < 1e-6);
/// let row1 = [-0.2f32, -0.2, 0.2];
/// assert!(w.as_slice().unwrap()[3..].iter().zip(row1).all(|(a, b)| (a - b).abs() < 1e-6));
/// ```
#[derive(Debug, Clone)]
pub struct BinaryConnect {
    scale: BinaryScale,
    clip: bool,
}

impl BinaryConnect {
    /// Binarization with the given scaling, clipping shadow weights to `[-1, 1]`.
    pub fn new(scale: BinaryScale) -> Self {
        Self { scale, clip: true }
    }

    /// Turns the shadow-weight clipping off (weights may then drift far from zero, where
    /// their sign no longer changes).
    pub fn clip(mut self, on: bool) -> Self {
        self.clip = on;
        self
    }

    /// The scaling.
    pub fn scale(&self) -> BinaryScale {
        self.scale
    }

    /// The stored tensor: exactly the signs and scales of the forward pass. Errors on NaN
    /// or infinite weights.
    pub fn binarize(&self, w: &ArrayD<f32>) -> Result<BinaryTensor> {
        if w.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: "the weight to binarize".into() });
        }
        let (cols, count) = blocks(w.shape(), self.scale == BinaryScale::PerChannel);
        let data: Vec<f32> = w.iter().copied().collect();
        let scales: Vec<f32> = match self.scale {
            BinaryScale::None => vec![1.0],
            _ => (0..count)
                .map(|b| {
                    let s = &data[b * cols..((b + 1) * cols).min(data.len())];
                    s.iter().map(|v| v.abs()).sum::<f32>() / s.len().max(1) as f32
                })
                .collect(),
        };
        let signs: Vec<bool> = data.iter().map(|v| *v >= 0.0).collect();
        BinaryTensor::new(w.shape(), &signs, scales)
    }
}

impl Constraint for BinaryConnect {
    fn name(&self) -> &'static str {
        "binary-connect"
    }

    fn forward_value(&self, master: &ArrayD<f32>) -> Option<ArrayD<f32>> {
        self.binarize(master).ok().map(|b| b.to_dense())
    }

    fn project(&mut self, value: &mut ArrayD<f32>) {
        if self.clip {
            value.mapv_inplace(|v| v.clamp(-1.0, 1.0));
        }
    }

    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
