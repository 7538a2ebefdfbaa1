//! Importance criteria that rank the output channels of a layer (Conv2d filters, Linear
//! neurons), and the network-slimming sparsity penalty on BatchNorm scales.

use crate::error::{PruneError, Result, check_finite};
use deepcompress_core::layer::{BatchNorm, Conv2d, Layer, Linear};
use deepcompress_core::model::Model;
use deepcompress_core::train::Optimizer;
use ndarray::{ArrayD, ArrayView2};

/// How important an output channel is; the channels with the lowest scores are removed.
///
/// * [`Criterion::L1`] — sum of absolute filter weights (Li et al. 2017, "Pruning filters
///   for efficient ConvNets", arXiv 1608.08710). Cheap, the usual baseline.
/// * [`Criterion::L2`] — Euclidean norm of the filter (He et al. 2018, "Soft filter
///   pruning", arXiv 1808.06866). Like L1, more sensitive to large weights.
/// * [`Criterion::Fpgm`] — filter pruning via geometric median (He et al. 2019,
///   arXiv 1811.00250): a filter's score is the sum of its distances to every other filter
///   of the layer, so the filters nearest the geometric median — the most replaceable
///   ones — score lowest. Use it when norms are all similar (small norm spread).
/// * [`Criterion::BnScale`] — network slimming (Liu et al. 2017, arXiv 1708.06519): the
///   magnitude |γ| of the BatchNorm scale that follows the channel. Best after training
///   with [`slimming_penalty`] (or [`Slimming`]), which drives unneeded γ towards zero;
///   γ are comparable across layers, so it suits a global target.
///
/// ```
/// use deepcompress_core::layer::Linear;
/// use deepcompress_prune::structured::Criterion;
/// use ndarray::array;
/// let fc = Linear::from_weights(array![[1.0f32, -1.0], [0.5, 0.0], [3.0, 4.0]], None).unwrap();
/// assert_eq!(Criterion::L1.weight_scores(&fc, "fc").unwrap(), vec![2.0, 0.5, 7.0]);
/// assert_eq!(Criterion::L2.weight_scores(&fc, "fc").unwrap()[2], 5.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Criterion {
    /// L1 norm of each filter / neuron (Li et al. 2017, arXiv 1608.08710).
    L1,
    /// L2 norm of each filter / neuron (He et al. 2018, arXiv 1808.06866).
    L2,
    /// Sum of distances to the layer's other filters (He et al. 2019, arXiv 1811.00250).
    Fpgm,
    /// |γ| of the following BatchNorm (Liu et al. 2017, arXiv 1708.06519).
    BnScale,
}

impl Criterion {
    /// Short name for reports (`l1`, `l2`, `fpgm`, `bn-scale`).
    pub fn name(&self) -> &'static str {
        match self {
            Criterion::L1 => "l1",
            Criterion::L2 => "l2",
            Criterion::Fpgm => "fpgm",
            Criterion::BnScale => "bn-scale",
        }
    }

    /// True when the criterion reads the weights of the producing Conv2d / Linear layer;
    /// false for [`Criterion::BnScale`], which reads the BatchNorm scales.
    pub fn uses_weights(&self) -> bool {
        !matches!(self, Criterion::BnScale)
    }

    /// True when scores of different layers are on one scale (BatchNorm γ, as in network
    /// slimming). Weight norms grow with the fan-in, so a global ranking first divides
    /// them by their group's mean score.
    pub fn globally_comparable(&self) -> bool {
        matches!(self, Criterion::BnScale)
    }

    /// One score per output channel of a Conv2d or Linear layer at `path` (L1, L2 or FPGM;
    /// see the type's documentation for the papers). Errors on other layers, on
    /// [`Criterion::BnScale`] (use [`bn_scores`]) and on non-finite weights.
    ///
    /// ```
    /// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
    /// use deepcompress_prune::structured::Criterion;
    /// let conv = Conv2d::new(Conv2dConfig::new(3, 8, 3), 0).unwrap();
    /// assert_eq!(Criterion::Fpgm.weight_scores(&conv, "conv").unwrap().len(), 8);
    /// ```
    pub fn weight_scores(&self, layer: &dyn Layer, path: &str) -> Result<Vec<f32>> {
        let w = filter_matrix(layer, path)?;
        check_finite(w.as_slice().expect("standard layout"), &format!("{path}.weight"))?;
        let rows = w.view().into_shape_with_order(row_shape(&w)).expect("contiguous weight");
        Ok(match self {
            Criterion::L1 => {
                rows.rows().into_iter().map(|r| r.iter().map(|v| v.abs()).sum()).collect()
            }
            Criterion::L2 => rows
                .rows()
                .into_iter()
                .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt())
                .collect(),
            Criterion::Fpgm => fpgm_scores(rows),
            Criterion::BnScale => {
                return Err(PruneError::param(
                    "criterion",
                    "bn-scale",
                    format!("ranks BatchNorm scales, not the weights of `{path}`"),
                ));
            }
        })
    }
}

/// `[out, rest]` for a weight whose first axis is the output channel.
fn row_shape(w: &ArrayD<f32>) -> (usize, usize) {
    let out = w.shape()[0];
    (out, w.len().checked_div(out).unwrap_or(0))
}

/// The weight of a Conv2d or Linear (output channel first), or a typed refusal.
fn filter_matrix(layer: &dyn Layer, path: &str) -> Result<ArrayD<f32>> {
    if let Some(c) = layer.as_any().downcast_ref::<Conv2d>() {
        return Ok(c.weight.value().as_standard_layout().into_owned());
    }
    if let Some(fc) = layer.as_any().downcast_ref::<Linear>() {
        return Ok(fc.weight.value().as_standard_layout().into_owned());
    }
    Err(PruneError::Unsupported {
        path: path.to_string(),
        kind: layer.kind().to_string(),
        reason: "weight criteria rank the filters of Conv2d or the neurons of Linear".into(),
    })
}

/// Sum of Euclidean distances from each row to every other row (He et al. 2019): rows
/// close to the geometric median have small sums and carry information the others share.
fn fpgm_scores(rows: ArrayView2<f32>) -> Vec<f32> {
    let n = rows.nrows();
    // Distances in f64 so that near-identical filters still rank consistently.
    let mut sums = vec![0.0f64; n];
    for i in 0..n {
        for j in i + 1..n {
            let d = rows
                .row(i)
                .iter()
                .zip(rows.row(j))
                .map(|(a, b)| {
                    let d = f64::from(*a) - f64::from(*b);
                    d * d
                })
                .sum::<f64>()
                .sqrt();
            sums[i] += d;
            sums[j] += d;
        }
    }
    sums.into_iter().map(|s| s as f32).collect()
}

/// |γ| of each channel of a BatchNorm at `path`: the network-slimming score (Liu et al.
/// 2017, arXiv 1708.06519). Errors on non-finite scales.
///
/// ```
/// use deepcompress_core::layer::BatchNorm;
/// use deepcompress_prune::structured::bn_scores;
/// let mut bn = BatchNorm::new_2d(3);
/// bn.weight.value_mut().assign(&ndarray::arr1(&[0.5f32, -2.0, 0.0]).into_dyn());
/// assert_eq!(bn_scores(&bn, "bn").unwrap(), vec![0.5, 2.0, 0.0]);
/// ```
pub fn bn_scores(bn: &BatchNorm, path: &str) -> Result<Vec<f32>> {
    let g = bn.weight.value();
    if g.iter().any(|v| !v.is_finite()) {
        return Err(PruneError::NonFinite { path: format!("{path}.weight") });
    }
    Ok(g.iter().map(|v| v.abs()).collect())
}

/// Adds the network-slimming sub-gradient `lambda * sign(γ)` of the penalty
/// `lambda * Σ|γ|` to the γ gradient of every BatchNorm of `model` (Liu et al. 2017,
/// arXiv 1708.06519; the paper uses `lambda` around 1e-4 to 1e-5 with SGD). Call it after
/// `backward` and before the optimizer step, or wrap the optimizer in [`Slimming`].
/// Returns the number of BatchNorm layers touched; errors on a negative or non-finite
/// `lambda` without changing anything.
///
/// ```
/// use deepcompress_core::models::resnet_small;
/// use deepcompress_prune::structured::slimming_penalty;
/// let mut m = resnet_small(0);
/// assert_eq!(slimming_penalty(&mut m, 1e-4).unwrap(), 9);
/// let g = m.layer_as::<deepcompress_core::layer::BatchNorm>("bn1").unwrap().weight.grad()[[0]];
/// assert_eq!(g, 1e-4); // γ starts at 1, so sign(γ) = 1
/// assert!(slimming_penalty(&mut m, -1.0).is_err());
/// ```
pub fn slimming_penalty(model: &mut Model, lambda: f32) -> Result<usize> {
    if !(lambda.is_finite() && lambda >= 0.0) {
        return Err(PruneError::param("slimming lambda", lambda, "must be finite and >= 0"));
    }
    let paths: Vec<String> = {
        let mut v = Vec::new();
        model.visit(|p, l| {
            if l.as_any().is::<BatchNorm>() {
                v.push(p.to_string());
            }
        });
        v
    };
    for p in &paths {
        let bn =
            model.layer_mut(p)?.as_any_mut().downcast_mut::<BatchNorm>().expect("checked kind");
        let (value, _) = bn.weight.value_and_grad_mut();
        let sign = value.mapv(|g| {
            if g > 0.0 {
                lambda
            } else if g < 0.0 {
                -lambda
            } else {
                0.0
            }
        });
        bn.weight.accumulate_grad(&sign);
    }
    Ok(paths.len())
}

/// An optimizer wrapper that adds the network-slimming penalty (Liu et al. 2017,
/// arXiv 1708.06519) to the BatchNorm γ gradients before each step, so that a core
/// `Trainer` trains with channel-level sparsity and [`Criterion::BnScale`] can then prune
/// the channels whose γ went to zero.
///
/// ```
/// use deepcompress_core::train::{Optimizer, Sgd};
/// use deepcompress_prune::structured::Slimming;
/// let mut m = deepcompress_core::models::resnet_small(0);
/// let mut opt = Slimming::new(Sgd::new(0.0).unwrap(), 0.1).unwrap();
/// opt.step(&mut m, 1.0); // zero data gradients: only the penalty moves γ
/// let bn = m.layer_as::<deepcompress_core::layer::BatchNorm>("bn1").unwrap();
/// assert!((bn.weight.value()[[0]] - 0.9).abs() < 1e-6);
/// ```
#[derive(Debug)]
pub struct Slimming<O> {
    inner: O,
    lambda: f32,
}

impl<O: Optimizer> Slimming<O> {
    /// Wraps `inner` with penalty weight `lambda` (finite, >= 0), as in network slimming
    /// (Liu et al. 2017, arXiv 1708.06519).
    pub fn new(inner: O, lambda: f32) -> Result<Self> {
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(PruneError::param("slimming lambda", lambda, "must be finite and >= 0"));
        }
        Ok(Self { inner, lambda })
    }

    /// The wrapped optimizer.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

impl<O: Optimizer> Optimizer for Slimming<O> {
    fn step(&mut self, model: &mut Model, lr: f32) {
        slimming_penalty(model, self.lambda).expect("lambda checked in Slimming::new");
        self.inner.step(model, lr);
    }

    fn reset(&mut self) {
        self.inner.reset();
    }
}
