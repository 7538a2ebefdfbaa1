//! Learned step size quantization (LSQ, Esser et al. 2019, arXiv 1902.08153): the
//! shared gradient rule and the activation quantizer [`LsqActivation`].

use super::positive::PositiveScalar;
use crate::error::{QuantError, Result};
use crate::scheme::QuantScheme;
use deepcompress_core::layer::{Layer, LayerCost, Mode};
use deepcompress_core::{CoreError, Param};
use ndarray::{ArrayD, IxDyn};
use std::any::Any;

/// The smallest step LSQ lets a quantizer learn.
pub(crate) const MIN_STEP: f32 = 1e-8;

/// LSQ's step initialisation, `2·mean|v| / sqrt(Qp)`; 1 when every value is zero.
pub(crate) fn init_step(mean_abs: f32, qp: i32) -> f32 {
    let s = 2.0 * mean_abs / (qp as f32).sqrt();
    if s.is_finite() && s > MIN_STEP { s } else { 1.0 }
}

/// The LSQ gradient scale `1 / sqrt(N · Qp)` for `n` values sharing one step.
pub(crate) fn grad_scale(n: usize, qp: i32) -> f32 {
    1.0 / ((n.max(1) as f32) * qp as f32).sqrt()
}

/// `v̂ = clamp(round(v / s), -qn, qp) · s`, with LSQ's gradients: `∂v̂/∂v` is 1 inside the
/// range and 0 outside (straight-through estimator); `∂v̂/∂s` is `-qn`, `qp`, or
/// `round(v/s) - v/s` inside. Returns `(v̂, ∂v̂/∂v, ∂v̂/∂s)`.
pub(crate) fn lsq(v: f32, s: f32, qn: i32, qp: i32) -> (f32, f32, f32) {
    let r = v / s;
    let (qn, qp) = (qn as f32, qp as f32);
    if r <= -qn {
        (-qn * s, 0.0, -qn)
    } else if r >= qp {
        (qp * s, 0.0, qp)
    } else {
        let q = r.round();
        (q * s, 1.0, q - r)
    }
}

/// An LSQ activation quantizer with a trainable step `s` (Esser et al. 2019, "Learned
/// Step Size Quantization", arXiv 1902.08153): `y = clamp(round(x/s), -Qn, Qp) · s`.
///
/// Unsigned (`Qn = 0`, `Qp = 2^b - 1`) it replaces a ReLU (the lower clamp is the ReLU);
/// signed (`Qn = 2^(b-1)`, `Qp = 2^(b-1) - 1`) it quantizes any activation. The input
/// gradient is the straight-through estimator inside the range and zero outside; the
/// step's gradient is the paper's, scaled by `1/sqrt(N·Qp)` with `N` the features per
/// sample. The step starts at `2·mean|x| / sqrt(Qp)` of the first batch it sees (or a
/// given value) and stays positive. Use it to train a network for low-bit activations
/// where the best clipping range is not known.
///
/// ```
/// use deepcompress_core::layer::{Layer, Mode};
/// use deepcompress_quant::LsqActivation;
/// use ndarray::array;
/// let mut q = LsqActivation::new(2, false)?.with_step(0.5)?;
/// let y = q.forward(array![[-1.0f32, 0.3, 0.8, 9.0]].into_dyn(), Mode::Train)?;
/// assert_eq!(y, array![[0.0f32, 0.5, 1.0, 1.5]].into_dyn()); // Qp = 3
/// q.backward(array![[1.0f32, 1.0, 1.0, 1.0]].into_dyn(), false)?;
/// // ∂y/∂s: 0 (clipped below), 1 - 0.6, 2 - 1.6, 3 (clipped above); times 1/sqrt(4·3)
/// let expected = (0.4 + 0.4 + 3.0) / 12f32.sqrt();
/// assert!((q.step() - 0.5).abs() < 1e-6 && (q.params()[0].1.grad()[0] - expected).abs() < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LsqActivation {
    bits: u8,
    signed: bool,
    step: Param,
    /// Buffer `initialized`: 1 once the step has been set (saved with the model, so a
    /// loaded step is not re-initialised from the next batch).
    initialized: ArrayD<f32>,
    input: Option<ArrayD<f32>>,
}

impl LsqActivation {
    /// A `bits`-bit quantizer (2 to 8, or 16), signed or unsigned, whose step is
    /// initialised from the first batch.
    pub fn new(bits: u8, signed: bool) -> Result<Self> {
        QuantScheme::new(bits).check()?;
        let mut step = Param::new(ArrayD::from_elem(IxDyn(&[1]), 1.0));
        step.set_constraint(Box::new(PositiveScalar::new(MIN_STEP, 0.0)));
        Ok(Self { bits, signed, step, initialized: ArrayD::zeros(IxDyn(&[1])), input: None })
    }

    /// Starts from a given step instead (finite, > 0).
    pub fn with_step(mut self, step: f32) -> Result<Self> {
        if !(step.is_finite() && step > 0.0) {
            return Err(QuantError::param("LSQ step", step, "must be finite and > 0"));
        }
        self.step.set_value(ArrayD::from_elem(IxDyn(&[1]), step));
        self.initialized.fill(1.0);
        Ok(self)
    }

    /// Bits per activation.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The current step.
    pub fn step(&self) -> f32 {
        self.step.value()[0]
    }

    /// Whether negative values are quantized too (otherwise it includes a ReLU).
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// `(Qn, Qp)`: the codes run from `-Qn` to `Qp`.
    pub fn levels(&self) -> (i32, i32) {
        if self.signed {
            (1 << (self.bits - 1), (1 << (self.bits - 1)) - 1)
        } else {
            (0, (1 << self.bits) - 1)
        }
    }
}

impl Layer for LsqActivation {
    fn kind(&self) -> &'static str {
        "LsqActivation"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> deepcompress_core::Result<ArrayD<f32>> {
        let (qn, qp) = self.levels();
        if self.initialized[0] < 0.5 && !x.is_empty() {
            let signed = self.signed;
            let sum: f64 =
                x.iter().map(|&v| if signed { v.abs() } else { v.max(0.0) } as f64).sum();
            let s = init_step((sum / x.len() as f64) as f32, qp);
            self.step.set_value(ArrayD::from_elem(IxDyn(&[1]), s));
            self.initialized.fill(1.0);
        }
        let s = self.step();
        let y = x.mapv(|v| lsq(v, s, qn, qp).0);
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
            .ok_or_else(|| CoreError::NoForwardCache { layer: "LsqActivation".into() })?;
        if grad.shape() != x.shape() {
            return Err(CoreError::shape(
                "LsqActivation backward",
                format!("{:?}", x.shape()),
                grad.shape(),
            ));
        }
        let (qn, qp) = self.levels();
        let s = self.step();
        let mut ds = 0.0f64;
        let mut dx = grad;
        for (g, &v) in dx.iter_mut().zip(x.iter()) {
            let (_, d_dx, d_ds) = lsq(v, s, qn, qp);
            ds += (*g * d_ds) as f64;
            *g *= d_dx;
        }
        let features = x.len() / x.shape().first().copied().unwrap_or(1).max(1);
        self.step.grad_mut()[0] += ds as f32 * grad_scale(features, qp);
        Ok(need_input_grad.then_some(dx))
    }

    fn output_shape(&self, input: &[usize]) -> deepcompress_core::Result<Vec<usize>> {
        Ok(input.to_vec())
    }

    fn cost(&self, input: &[usize]) -> deepcompress_core::Result<LayerCost> {
        self.output_shape(input)?;
        Ok(LayerCost::dense([&self.step], 0))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("step", &self.step)]
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("step", &mut self.step)]
    }

    fn buffers(&self) -> Vec<(&'static str, &ArrayD<f32>)> {
        vec![("initialized", &self.initialized)]
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut ArrayD<f32>)> {
        vec![("initialized", &mut self.initialized)]
    }

    fn encoding(&self) -> String {
        format!("{}{} activations", if self.signed { "int" } else { "uint" }, self.bits)
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
