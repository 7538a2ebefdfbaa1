//! PACT: parameterized clipping activation (Choi et al. 2018, arXiv 1805.06085).

use super::positive::PositiveScalar;
use crate::error::{QuantError, Result};
use crate::scheme::QuantScheme;
use deepcompress_core::layer::{Layer, LayerCost, Mode};
use deepcompress_core::{CoreError, Param};
use ndarray::{ArrayD, IxDyn};
use std::any::Any;

/// The smallest clipping level PACT lets α reach.
const MIN_ALPHA: f32 = 1e-3;

/// A ReLU with a learned upper clipping level α, optionally quantized to `b` bits
/// (Choi et al. 2018, "PACT: Parameterized Clipping Activation for Quantized Neural
/// Networks", arXiv 1805.06085):
/// `y = clamp(x, 0, α)`, then `y_q = round(y · (2^b - 1)/α) · α/(2^b - 1)`.
///
/// Gradients as in the paper: `∂y_q/∂x = 1` for `0 ≤ x ≤ α` and 0 elsewhere
/// (straight-through through the rounding), `∂y_q/∂α = 1` for `x ≥ α` and 0 elsewhere.
/// An optional L2 penalty `λ/2·α²` (the paper's regulariser) pulls α down; α stays
/// `≥ 1e-3`. Use it in place of a ReLU to train for low-bit (4 bits and below)
/// activations, where a fixed ReLU6-style clip is too coarse or too wide.
///
/// ```
/// use deepcompress_core::layer::{Layer, Mode};
/// use deepcompress_quant::Pact;
/// use ndarray::array;
/// let mut p = Pact::new(2.0, Some(2), 0.0)?; // 4 levels: 0, 2/3, 4/3, 2
/// let y = p.forward(array![[-1.0f32, 0.5, 1.9, 5.0]].into_dyn(), Mode::Train)?;
/// assert_eq!(y, array![[0.0f32, 2.0 / 3.0, 2.0, 2.0]].into_dyn());
/// let dx = p.backward(array![[1.0f32, 1.0, 1.0, 1.0]].into_dyn(), true)?.unwrap();
/// assert_eq!(dx, array![[0.0f32, 1.0, 1.0, 0.0]].into_dyn());
/// assert_eq!(p.params()[0].1.grad()[0], 1.0); // only x = 5 is clipped by α
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Pact {
    alpha: Param,
    bits: Option<u8>,
    input: Option<ArrayD<f32>>,
}

impl Pact {
    /// PACT with initial clipping level `alpha` (finite, > 0; the paper starts at 10),
    /// `bits` of quantization (2 to 8 or 16; `None` clips only) and L2 weight `l2 >= 0`
    /// on α.
    pub fn new(alpha: f32, bits: Option<u8>, l2: f32) -> Result<Self> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(QuantError::param("PACT alpha", alpha, "must be finite and > 0"));
        }
        if !(l2.is_finite() && l2 >= 0.0) {
            return Err(QuantError::param("PACT alpha l2", l2, "must be finite and >= 0"));
        }
        if let Some(b) = bits {
            QuantScheme::new(b).check()?;
        }
        let mut a = Param::new(ArrayD::from_elem(IxDyn(&[1]), alpha));
        a.set_constraint(Box::new(PositiveScalar::new(MIN_ALPHA, l2)));
        Ok(Self { alpha: a, bits, input: None })
    }

    /// The same quantizer with clipping level `alpha` (finite, > 0).
    pub fn with_alpha(mut self, alpha: f32) -> Result<Self> {
        if !(alpha.is_finite() && alpha > 0.0) {
            return Err(QuantError::param("PACT alpha", alpha, "must be finite and > 0"));
        }
        self.alpha.set_value(ArrayD::from_elem(IxDyn(&[1]), alpha.max(MIN_ALPHA)));
        Ok(self)
    }

    /// The current clipping level.
    pub fn alpha(&self) -> f32 {
        self.alpha.value()[0]
    }

    /// Bits of the quantized output, if quantized.
    pub fn bits(&self) -> Option<u8> {
        self.bits
    }
}

impl Layer for Pact {
    fn kind(&self) -> &'static str {
        "Pact"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> deepcompress_core::Result<ArrayD<f32>> {
        let a = self.alpha();
        let y = match self.bits {
            None => x.mapv(|v| v.clamp(0.0, a)),
            Some(b) => {
                let levels = ((1u32 << b) - 1) as f32;
                let step = a / levels;
                x.mapv(|v| (v.clamp(0.0, a) / step).round() * step)
            }
        };
        self.input = (mode == Mode::Train).then_some(x);
        Ok(y)
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> deepcompress_core::Result<Option<ArrayD<f32>>> {
        let x = self
            .input
            .as_ref()
            .ok_or_else(|| CoreError::NoForwardCache { layer: "Pact".into() })?;
        if grad.shape() != x.shape() {
            return Err(CoreError::shape(
                "Pact backward",
                format!("{:?}", x.shape()),
                grad.shape(),
            ));
        }
        let a = self.alpha();
        let mut da = 0.0f64;
        let mut dx = grad;
        for (g, &v) in dx.iter_mut().zip(x.iter()) {
            if v >= a {
                da += *g as f64;
            }
            if !(0.0..=a).contains(&v) {
                *g = 0.0;
            }
        }
        self.alpha.grad_mut()[0] += da as f32;
        Ok(need_input_grad.then_some(dx))
    }

    fn output_shape(&self, input: &[usize]) -> deepcompress_core::Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn cost(&self, input: &[usize]) -> deepcompress_core::Result<LayerCost> {
        self.output_shape(input)?;
        Ok(LayerCost::dense([&self.alpha], 0))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("alpha", &self.alpha)]
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("alpha", &mut self.alpha)]
    }

    fn encoding(&self) -> String {
        self.bits.map_or("f32 (clipped)".into(), |b| format!("uint{b} activations"))
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
