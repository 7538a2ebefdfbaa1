//! [`FakeQuant`]: weight fake quantization as a core [`Constraint`] with the
//! straight-through estimator.

use crate::error::{QuantError, Result};
use crate::scheme::{Granularity, QuantScheme};
use crate::tensor::QuantTensor;
use deepcompress_core::Constraint;
use deepcompress_core::tensor::Tensor;
use ndarray::ArrayD;
use std::any::Any;

/// Fake quantization of a weight: the forward pass uses `dequant(quant(w))`, the
/// optimizer updates the float master weight with the gradient of the quantized one
/// (straight-through estimator, Bengio et al. 2013, arXiv 1308.3432; the QAT recipe of
/// Jacob et al. 2018, arXiv 1712.05877).
///
/// Two grids:
/// * [`FakeQuant::new`]: the scales follow the weights (min-max per block, the grid of
///   [`QuantTensor::quantize`]), so [`FakeQuant::quantize`] stores exactly the simulated
///   codes. Use it to fine-tune a float model for a round-to-nearest target.
/// * [`FakeQuant::with_steps`]: fixed symmetric steps (one per tensor or per output
///   channel) and codes `clamp(round(w / s), -Qp, Qp)` with `Qp = 2^(b-1) - 1`; weights
///   beyond the range are clipped and, with [`FakeQuant::zero_grad_outside`], get no
///   gradient. [`LsqWeight`](crate::LsqWeight) learns these steps.
///
/// The constraint never changes the master value; the stored tensor is built by
/// [`FakeQuant::quantize`] (or the [`ConvertQat`](crate::ConvertQat) pass). If the master
/// holds NaN or infinity the forward pass uses the master unchanged (the model's input
/// and loss checks report it).
///
/// ```
/// use deepcompress_core::Param;
/// use deepcompress_quant::{FakeQuant, Granularity, QuantScheme};
/// use ndarray::array;
/// let mut p = Param::new(array![[0.1f32, -0.48, 0.3, 0.7]].into_dyn());
/// let scheme = QuantScheme::new(2).granularity(Granularity::PerTensor);
/// p.set_constraint(Box::new(FakeQuant::with_steps(scheme, vec![0.5])?.zero_grad_outside(true)));
/// // codes clamp(round(w / 0.5), -1, 1): 0, -1, 1, 1
/// assert_eq!(p.effective().into_owned(), array![[0.0f32, -0.5, 0.5, 0.5]].into_dyn());
/// assert_eq!(p.value()[[0, 0]], 0.1); // the master weight stays float
/// p.grad_mut().fill(1.0);
/// p.adjust_grad(); // 0.7 / 0.5 = 1.4 > 1: clipped, no gradient
/// assert_eq!(p.grad(), &array![[1.0f32, 1.0, 1.0, 0.0]].into_dyn());
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FakeQuant {
    scheme: QuantScheme,
    steps: Option<Vec<f32>>,
    zero_outside: bool,
    outside: Vec<bool>,
}

impl FakeQuant {
    /// Min-max fake quantization under `scheme` (any granularity, symmetric or affine).
    /// Errors on an invalid scheme.
    pub fn new(scheme: QuantScheme) -> Result<Self> {
        scheme.check()?;
        Ok(Self { scheme, steps: None, zero_outside: false, outside: Vec::new() })
    }

    /// Fixed symmetric steps: one for [`Granularity::PerTensor`] or one per output channel
    /// for [`Granularity::PerChannel`]. Errors on an invalid or affine scheme, group
    /// granularity, or a step that is not finite and positive (the count is checked
    /// against the weight by [`FakeQuant::quantize`]).
    pub fn with_steps(scheme: QuantScheme, steps: Vec<f32>) -> Result<Self> {
        scheme.check()?;
        if !scheme.symmetric {
            return Err(QuantError::param("scheme", "affine", "fixed steps are symmetric"));
        }
        if matches!(scheme.granularity, Granularity::PerGroup { .. }) {
            return Err(QuantError::param(
                "granularity",
                format!("{:?}", scheme.granularity),
                "fixed steps are per tensor or per channel",
            ));
        }
        if steps.is_empty() {
            return Err(QuantError::param("steps", 0, "need at least one step"));
        }
        if let Some(s) = steps.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(QuantError::param("step", s, "must be finite and > 0"));
        }
        Ok(Self { scheme, steps: Some(steps), zero_outside: false, outside: Vec::new() })
    }

    /// With fixed steps, gives no gradient to weights beyond the clipping range
    /// `[-Qp·s, Qp·s]` (the clipped straight-through estimator); a no-op for min-max
    /// scales, whose range holds every weight.
    pub fn zero_grad_outside(mut self, on: bool) -> Self {
        self.zero_outside = on;
        self
    }

    /// The scheme.
    pub fn scheme(&self) -> &QuantScheme {
        &self.scheme
    }

    /// The fixed steps, if any.
    pub fn steps(&self) -> Option<&[f32]> {
        self.steps.as_deref()
    }

    /// The stored tensor holding exactly the codes the forward pass simulates for `w`.
    /// Errors: NaN or infinite weights, a step count that does not fit `w`.
    pub fn quantize(&self, w: &ArrayD<f32>) -> Result<QuantTensor> {
        match &self.steps {
            None => QuantTensor::quantize(w, &self.scheme),
            Some(steps) => {
                if w.iter().any(|v| !v.is_finite()) {
                    return Err(QuantError::NonFinite { what: "the weight to quantize".into() });
                }
                let cols = channel_cols(w.shape(), steps.len())?;
                let qp = qmax(self.scheme.bits);
                let codes: Vec<i32> =
                    w.iter().enumerate().map(|(k, &v)| code(v, steps[k / cols], qp)).collect();
                QuantTensor::from_codes(w.shape(), &self.scheme, &codes, steps.clone(), None)
            }
        }
    }
}

/// Largest code magnitude of a `bits`-bit symmetric grid, `2^(b-1) - 1`.
pub(crate) fn qmax(bits: u8) -> i32 {
    (1i32 << (bits - 1)) - 1
}

/// `clamp(round(v / s), -qp, qp)`.
pub(crate) fn code(v: f32, s: f32, qp: i32) -> i32 {
    ((v / s).round() as i32).clamp(-qp, qp)
}

/// Elements per step: the whole tensor for one step, a row of `[shape[0], rest]` for one
/// step per output channel.
pub(crate) fn channel_cols(shape: &[usize], steps: usize) -> Result<usize> {
    let n: usize = shape.iter().product();
    let rows = shape.first().copied().unwrap_or(1);
    if steps == 1 {
        Ok(n.max(1))
    } else if steps == rows && rows > 0 {
        Ok(n / rows)
    } else {
        Err(QuantError::param(
            "steps",
            steps,
            format!("a weight of shape {shape:?} takes 1 or {rows} (one per output channel)"),
        ))
    }
}

impl Constraint for FakeQuant {
    fn name(&self) -> &'static str {
        "fake-quant"
    }

    fn forward_value(&self, master: &ArrayD<f32>) -> Option<ArrayD<f32>> {
        match &self.steps {
            None => self.quantize(master).ok().map(|q| q.to_dense()),
            Some(steps) => {
                let cols = channel_cols(master.shape(), steps.len()).ok()?;
                let qp = qmax(self.scheme.bits);
                let mut out = master.as_standard_layout().into_owned();
                for (k, v) in out.iter_mut().enumerate() {
                    let s = steps[k / cols];
                    *v = code(*v, s, qp) as f32 * s;
                }
                Some(out)
            }
        }
    }

    fn adjust_grad(&self, grad: &mut ArrayD<f32>) {
        if self.zero_outside && self.outside.len() == grad.len() {
            for (g, &out) in grad.iter_mut().zip(&self.outside) {
                if out {
                    *g = 0.0;
                }
            }
        }
    }

    fn project(&mut self, value: &mut ArrayD<f32>) {
        // The master is not changed; remember which weights the grid clips, for the
        // gradient of the next step.
        self.outside.clear();
        if let (true, Some(steps)) = (self.zero_outside, &self.steps)
            && let Ok(cols) = channel_cols(value.shape(), steps.len())
        {
            let qp = qmax(self.scheme.bits) as f32;
            self.outside =
                value.iter().enumerate().map(|(k, v)| (v / steps[k / cols]).abs() > qp).collect();
        }
    }

    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
