//! [`LsqWeight`]: a Linear or Conv2d whose weight is quantized with LSQ-learned steps.

use super::fake_quant::{FakeQuant, channel_cols, qmax};
use super::lsq::{MIN_STEP, grad_scale, init_step, lsq};
use super::positive::PositiveScalar;
use crate::error::{QuantError, Result};
use crate::scheme::{Granularity, QuantScheme};
use crate::tensor::QuantTensor;
use deepcompress_core::layer::{Conv2d, Layer, LayerCost, Linear, Mode};
use deepcompress_core::{CoreError, Param};
use ndarray::{ArrayD, IxDyn};
use std::any::Any;

/// A Linear or Conv2d trained with LSQ weight quantization (Esser et al. 2019, "Learned
/// Step Size Quantization", arXiv 1902.08153): the forward pass uses
/// `ŵ = clamp(round(w/s), -Qp, Qp) · s` with `Qp = 2^(b-1) - 1` and a trainable step `s`
/// per tensor or per output channel, exposed as the parameter `weight_step` next to the
/// wrapped layer's `weight` and `bias` (so state-dict names stay `fc1.weight`).
///
/// Gradients are the paper's: the weight gets the straight-through gradient inside the
/// range and none outside; the step gets `Σ ∂L/∂ŵ · ∂ŵ/∂s` (`∂ŵ/∂s` is `±Qp` when
/// clipped, `round(w/s) - w/s` inside) times `1/sqrt(N·Qp)`, `N` the weights per step.
/// The step starts at `2·mean|w| / sqrt(Qp)`. The grid is symmetric with `-Qp` as the
/// lowest code (the paper's `Qn = 2^(b-1)` would add one level), so that the trained
/// weight is exactly a symmetric [`QuantTensor`] ([`LsqWeight::quantized`]).
///
/// Why a wrapper layer rather than a constraint that keeps its own step: the step is then
/// an ordinary [`Param`], so every optimizer (momentum, Adam's moments, schedules)
/// updates it, the trainer's data-parallel replicas receive it with the other
/// parameters after every step, and it is saved with the model. A constraint's private
/// state is not copied to the replicas, which would keep quantizing with a stale step.
/// Use it to fine-tune a float model to 2 to 4-bit weights when round-to-nearest loses
/// too much accuracy.
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear, Mode};
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::LsqWeight;
/// use ndarray::array;
/// let fc = Linear::from_weights(array![[0.5f32, -1.0, 0.25, 2.0]], None)?;
/// let mut q = LsqWeight::new(Box::new(fc), 4, false)?;
/// // 2·mean|w| / sqrt(7)
/// assert!((q.steps()[0] - 2.0 * 0.9375 / 7f32.sqrt()).abs() < 1e-6);
/// let y = q.forward(array![[1.0f32, 1.0, 1.0, 1.0]].into_dyn(), Mode::Train)?;
/// let stored = q.quantized()?; // 4-bit codes exactly as simulated
/// assert!((stored.to_dense().sum() - y[[0, 0]]).abs() < 1e-5);
/// assert_eq!(q.params().iter().map(|(n, _)| *n).collect::<Vec<_>>(), ["weight", "weight_step"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LsqWeight {
    inner: Box<dyn Layer>,
    step: Param,
    scheme: QuantScheme,
}

fn weight_of(layer: &dyn Layer) -> Option<&Param> {
    layer.params().into_iter().find(|(n, _)| *n == "weight").map(|(_, p)| p)
}

fn weight_of_mut(layer: &mut dyn Layer) -> Option<&mut Param> {
    layer.params_mut().into_iter().find(|(n, _)| *n == "weight").map(|(_, p)| p)
}

impl LsqWeight {
    /// Wraps a [`Linear`] or [`Conv2d`] for `bits`-bit weights (2 to 8, or 16), with one
    /// step per output channel when `per_channel`. Errors: another layer kind, invalid
    /// bits, NaN or infinite weights. Any constraint on the weight is replaced.
    pub fn new(inner: Box<dyn Layer>, bits: u8, per_channel: bool) -> Result<Self> {
        let g = if per_channel { Granularity::PerChannel } else { Granularity::PerTensor };
        let scheme = QuantScheme::new(bits).granularity(g);
        scheme.check()?;
        let any = inner.as_any();
        if !(any.is::<Linear>() || any.is::<Conv2d>()) {
            return Err(QuantError::param(
                "LSQ layer",
                inner.kind(),
                "LSQ weights wrap a Linear or Conv2d",
            ));
        }
        let w = weight_of(inner.as_ref()).expect("Linear and Conv2d have a weight").value();
        if w.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: format!("weight of the {}", inner.kind()) });
        }
        let qp = qmax(bits);
        let rows = if per_channel { w.shape()[0] } else { 1 };
        let cols = channel_cols(w.shape(), rows)?;
        let steps: Vec<f32> = (0..rows)
            .map(|r| {
                let sl = &w.as_slice().expect("standard layout")[r * cols..(r + 1) * cols];
                init_step(sl.iter().map(|v| v.abs()).sum::<f32>() / cols.max(1) as f32, qp)
            })
            .collect();
        let mut step = Param::new(ArrayD::from_shape_vec(IxDyn(&[rows]), steps).expect("rows"));
        step.set_constraint(Box::new(PositiveScalar::new(MIN_STEP, 0.0)));
        let mut out = Self { inner, step, scheme };
        out.refresh()?;
        Ok(out)
    }

    /// The current steps (one, or one per output channel).
    pub fn steps(&self) -> &[f32] {
        self.step.value().as_slice().expect("contiguous")
    }

    /// The bit width.
    pub fn bits(&self) -> u8 {
        self.scheme.bits
    }

    /// The wrapped layer (its weight carries the fake-quantization constraint).
    pub fn inner(&self) -> &dyn Layer {
        self.inner.as_ref()
    }

    /// The wrapped layer's master weight.
    pub fn weight(&self) -> &Param {
        weight_of(self.inner.as_ref()).expect("Linear and Conv2d have a weight")
    }

    /// The weight as stored: the codes and steps the forward pass uses now.
    pub fn quantized(&self) -> Result<QuantTensor> {
        FakeQuant::with_steps(self.scheme, self.steps().to_vec())?.quantize(self.weight().value())
    }

    /// Puts the current steps into the wrapped weight's fake-quantization constraint.
    fn refresh(&mut self) -> Result<()> {
        let fq = FakeQuant::with_steps(self.scheme, self.steps().to_vec())?;
        weight_of_mut(self.inner.as_mut()).expect("weight").set_constraint(Box::new(fq));
        Ok(())
    }
}

impl Layer for LsqWeight {
    fn kind(&self) -> &'static str {
        if self.inner.as_any().is::<Linear>() { "LsqLinear" } else { "LsqConv2d" }
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> deepcompress_core::Result<ArrayD<f32>> {
        self.refresh().map_err(|e| e.into_core("LSQ"))?;
        self.inner.forward(x, mode)
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> deepcompress_core::Result<Option<ArrayD<f32>>> {
        let before = self.weight().grad().clone();
        let dx = self.inner.backward(grad, need_input_grad)?;
        let qp = qmax(self.scheme.bits);
        let steps = self.steps().to_vec();
        let cols = channel_cols(self.weight().value().shape(), steps.len())
            .map_err(|e| e.into_core("LSQ"))?;
        let w = self.weight().value().clone();
        let mut ds = vec![0.0f64; steps.len()];
        let p = weight_of_mut(self.inner.as_mut()).expect("weight");
        // The wrapped layer added ∂L/∂ŵ; keep it inside the range only, and collect the
        // step's gradient from it.
        for (k, ((g, b), &v)) in
            p.grad_mut().iter_mut().zip(before.iter()).zip(w.iter()).enumerate()
        {
            let c = k / cols;
            let d = *g - b;
            let (_, d_dw, d_ds) = lsq(v, steps[c], qp, qp);
            ds[c] += (d * d_ds) as f64;
            *g = b + d * d_dw;
        }
        let scale = grad_scale(cols, qp);
        for (g, d) in self.step.grad_mut().iter_mut().zip(ds) {
            *g += d as f32 * scale;
        }
        if !(self.step.grad().iter().all(|g| g.is_finite())) {
            return Err(CoreError::NonFinite {
                context: self.kind().into(),
                what: "step gradient".into(),
            });
        }
        Ok(dx)
    }

    fn output_shape(&self, input: &[usize]) -> deepcompress_core::Result<Vec<usize>> {
        self.inner.output_shape(input)
    }

    fn cost(&self, input: &[usize]) -> deepcompress_core::Result<LayerCost> {
        Ok(self.inner.cost(input)? + LayerCost::dense([&self.step], 0))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        let mut p = self.inner.params();
        p.push(("weight_step", &self.step));
        p
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        let mut p = self.inner.params_mut();
        p.push(("weight_step", &mut self.step));
        p
    }

    fn buffers(&self) -> Vec<(&'static str, &ArrayD<f32>)> {
        self.inner.buffers()
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut ArrayD<f32>)> {
        self.inner.buffers_mut()
    }

    fn reseed(&mut self, seed: u64) {
        self.inner.reseed(seed);
    }

    fn encoding(&self) -> String {
        format!("f32 (LSQ int{} simulated)", self.scheme.bits)
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
