//! The training constraint of weight sharing: every weight is its cluster's centroid.

use super::SharedTensor;
use super::kmeans::Method;
use crate::bits::PackedInts;
use crate::{PruneError, Result};
use deepcompress_core::param::Constraint;
use ndarray::ArrayD;
use std::any::Any;

/// Ties each weight to a centroid of a codebook during retraining (Han, Mao and Dally,
/// "Deep Compression", 2015, arXiv 1510.00149, sec. 3.1, eq. 3).
///
/// - [`Constraint::adjust_grad`] replaces every weight's gradient by the **sum** of the
///   gradients of its cluster (eq. 3: `dL/dC_k = sum over I_ij = k of dL/dW_ij`). All the
///   weights of a cluster then receive the same update, so they stay equal, and with
///   plain SGD their common value, the centroid, moves by exactly `lr * sum`, as in the
///   paper. (With Adam the per-weight normalisation makes the scale of the sum irrelevant.)
/// - [`Constraint::project`] sets each centroid to the mean of its weights (their common
///   value after an optimizer step, the least-squares projection otherwise) and writes
///   the centroids back, so the codebook itself is what retraining fine-tunes.
/// - Pruned weights (label [`SharedWeights::PRUNED`]) belong to no cluster: their gradient
///   is zeroed and they stay exactly 0, which composes weight sharing with a pruning mask.
///
/// Both hooks leave a parameter whose length differs from the labels untouched (a
/// constraint cannot report errors; [`WeightSharing`](super::WeightSharing) checks shapes).
///
/// ```
/// use deepcompress_core::param::Param;
/// use deepcompress_prune::sharing::{Init, Method, SharedWeights};
/// use ndarray::array;
/// let w = array![[0.1f32, 0.0, 0.9], [1.1, 0.2, 0.0]].into_dyn();
/// let keep = [true, false, true, true, true, true]; // w[0][1] is pruned
/// let (c, sse) = SharedWeights::fit(&w, Some(&keep), 2, Method::Lloyd(Init::Linear)).unwrap();
/// assert!(sse > 0.0);
/// let mut p = Param::new(w);
/// p.set_constraint(Box::new(c));
/// assert_eq!(p.value(), &array![[0.1f32, 0.0, 1.0], [1.0, 0.1, 0.1]].into_dyn());
/// // One step: the gradient of each cluster is summed, the pruned weight gets none.
/// p.grad_mut().fill(1.0);
/// p.adjust_grad();
/// assert_eq!(p.grad(), &array![[3.0f32, 0.0, 2.0], [2.0, 3.0, 3.0]].into_dyn());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SharedWeights {
    codebook: Vec<f32>,
    labels: Vec<u32>,
}

impl SharedWeights {
    /// Label of a pruned weight: in no cluster, always 0.
    pub const PRUNED: u32 = u32::MAX;

    /// A constraint from a codebook (finite values) and one label per weight in row-major
    /// order, each an index into the codebook or [`SharedWeights::PRUNED`].
    pub fn new(codebook: Vec<f32>, labels: Vec<u32>) -> Result<Self> {
        if let Some((i, v)) = codebook.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PruneError::param(format!("codebook[{i}]"), v, "must be finite"));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l != Self::PRUNED && **l as usize >= codebook.len())
        {
            return Err(PruneError::param(
                format!("labels[{i}]"),
                l,
                format!("the codebook has {} entries", codebook.len()),
            ));
        }
        Ok(Self { codebook, labels })
    }

    /// Clusters the weights `values` whose `keep` flag is set (all when `keep` is `None`)
    /// into at most `k` clusters with `method`; the others are pruned. Returns the
    /// constraint and the clustering's squared error. A layer with every weight pruned
    /// gets an empty codebook.
    pub fn fit(
        values: &ArrayD<f32>,
        keep: Option<&[bool]>,
        k: usize,
        method: Method,
    ) -> Result<(Self, f64)> {
        if let Some(keep) = keep
            && keep.len() != values.len()
        {
            return Err(PruneError::param(
                "mask length",
                keep.len(),
                format!("the weight {:?} has {} values", values.shape(), values.len()),
            ));
        }
        let kept = |i: usize| keep.is_none_or(|m| m[i]);
        let data: Vec<f32> =
            values.iter().enumerate().filter(|(i, _)| kept(*i)).map(|(_, v)| *v).collect();
        if data.is_empty() {
            return Ok((Self { codebook: vec![], labels: vec![Self::PRUNED; values.len()] }, 0.0));
        }
        let c = method.cluster(&data, k)?;
        let mut next = c.labels.iter();
        let labels = (0..values.len())
            .map(|i| {
                if kept(i) { *next.next().expect("one label per kept value") } else { Self::PRUNED }
            })
            .collect();
        Ok((Self { codebook: c.codebook, labels }, c.sse))
    }

    /// The centroids (updated by every [`Constraint::project`]).
    pub fn codebook(&self) -> &[f32] {
        &self.codebook
    }

    /// One label per weight: a codebook index or [`SharedWeights::PRUNED`].
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Number of pruned weights.
    pub fn pruned(&self) -> usize {
        self.labels.iter().filter(|l| **l == Self::PRUNED).count()
    }

    /// The frozen encoding of a weight of `shape` under this constraint: the codebook, plus
    /// an exact 0 entry when some weights are pruned and no centroid is 0, indexed with
    /// the fewest bits that address it (Han et al. 2015, arXiv 1510.00149, sec. 3).
    pub fn to_tensor(&self, shape: &[usize]) -> Result<SharedTensor> {
        let mut codebook = self.codebook.clone();
        let mut zero = None;
        if self.pruned() > 0 {
            zero = codebook.iter().position(|c| *c == 0.0);
            if zero.is_none() {
                codebook.push(0.0);
                zero = Some(codebook.len() - 1);
            }
        }
        let indices: Vec<u32> = self
            .labels
            .iter()
            .map(|&l| if l == Self::PRUNED { zero.expect("set when pruned") as u32 } else { l })
            .collect();
        let top = codebook.len().saturating_sub(1).min(u32::MAX as usize) as u32;
        SharedTensor::from_parts(shape, codebook, &indices, PackedInts::bits_for(top))
    }
}

impl Constraint for SharedWeights {
    fn name(&self) -> &'static str {
        "shared-weights"
    }

    fn adjust_grad(&self, grad: &mut ArrayD<f32>) {
        if grad.len() != self.labels.len() {
            return;
        }
        let mut sums = vec![0.0f64; self.codebook.len()];
        for (g, &l) in grad.iter().zip(&self.labels) {
            if l != Self::PRUNED {
                sums[l as usize] += *g as f64;
            }
        }
        for (g, &l) in grad.iter_mut().zip(&self.labels) {
            *g = if l == Self::PRUNED { 0.0 } else { sums[l as usize] as f32 };
        }
    }

    fn project(&mut self, value: &mut ArrayD<f32>) {
        if value.len() != self.labels.len() {
            return;
        }
        let mut sums = vec![(0.0f64, 0usize); self.codebook.len()];
        for (v, &l) in value.iter().zip(&self.labels) {
            if l != Self::PRUNED {
                let s = &mut sums[l as usize];
                (s.0, s.1) = (s.0 + *v as f64, s.1 + 1);
            }
        }
        for (c, (sum, n)) in self.codebook.iter_mut().zip(sums) {
            if n > 0 {
                *c = (sum / n as f64) as f32;
            }
        }
        for (v, &l) in value.iter_mut().zip(&self.labels) {
            *v = if l == Self::PRUNED { 0.0 } else { self.codebook[l as usize] };
        }
    }

    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::Init;
    use deepcompress_core::layer::{Linear, Sequential};
    use deepcompress_core::train::{Optimizer, Sgd, mse};
    use deepcompress_core::{Mode, Model};
    use ndarray::{Array2, ArrayD};

    fn shared(model: &Model) -> SharedWeights {
        let fc = model.layer_as::<Linear>("fc").unwrap();
        fc.weight.constraint().unwrap().as_any().downcast_ref::<SharedWeights>().unwrap().clone()
    }

    /// A tiny Linear with a 4-cluster codebook and one pruned weight in three, trained a
    /// few SGD steps on a regression target.
    #[test]
    fn sgd_keeps_k_values_moves_centroids_and_keeps_pruned_zeros() {
        let mut fc = Linear::new(6, 5, true, 3);
        let w = fc.weight.value().clone();
        let keep: Vec<bool> = (0..w.len()).map(|i| i % 3 != 0).collect();
        let (c, _) = SharedWeights::fit(&w, Some(&keep), 4, Method::Exact).unwrap();
        fc.weight.set_constraint(Box::new(c));
        let mut model = Model::new(Sequential::new().with_named("fc", fc));
        let before = shared(&model).codebook().to_vec();
        let x = ArrayD::from_shape_fn(vec![8, 6], |ix| ((ix[0] * 7 + ix[1] * 3) % 5) as f32 - 2.0);
        let target = ArrayD::from_shape_fn(vec![8, 5], |ix| (ix[1] as f32 - ix[0] as f32) * 0.3);
        let mut opt = Sgd::new(0.9).unwrap();
        for step in 0..5 {
            model.zero_grad();
            let y = model.forward(x.clone(), Mode::Train).unwrap();
            let (_, g) = mse(&y, &target).unwrap();
            model.backward(g).unwrap();
            // Eq. 3 with plain SGD on the first step: centroid moves by lr * summed grad.
            let grads = model.layer_as::<Linear>("fc").unwrap().weight.grad().clone();
            let labels = shared(&model).labels().to_vec();
            let old = shared(&model).codebook().to_vec();
            opt.step(&mut model, 0.01);
            if step == 0 {
                let new = shared(&model).codebook().to_vec();
                for c in 0..old.len() {
                    let sum: f32 = grads
                        .iter()
                        .zip(&labels)
                        .filter(|(_, l)| **l == c as u32)
                        .map(|(g, _)| g)
                        .sum();
                    assert!((old[c] - 0.01 * sum - new[c]).abs() < 1e-5, "centroid {c}");
                }
            }
        }
        let w = model.layer_as::<Linear>("fc").unwrap().weight.value().clone();
        let mut distinct: Vec<u32> = w.iter().filter(|v| **v != 0.0).map(|v| v.to_bits()).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() <= 4, "{} distinct values", distinct.len());
        assert!(w.iter().zip(&keep).all(|(v, k)| *k || *v == 0.0), "pruned weights stay 0");
        let after = shared(&model).codebook().to_vec();
        assert!(before.iter().zip(&after).all(|(a, b)| a != b), "{before:?} -> {after:?}");
    }

    #[test]
    fn to_tensor_adds_a_zero_code_for_pruned_weights() {
        let w = Array2::from_shape_vec((2, 2), vec![0.5f32, 0.0, -0.5, 0.6]).unwrap().into_dyn();
        let keep = [true, false, true, true];
        let (c, _) = SharedWeights::fit(&w, Some(&keep), 2, Method::Lloyd(Init::Linear)).unwrap();
        let t = c.to_tensor(&[2, 2]).unwrap();
        assert_eq!(t.codebook(), &[-0.5, 0.55, 0.0]);
        assert_eq!(t.bits(), 2);
        use deepcompress_core::tensor::Tensor;
        assert_eq!(t.to_dense().iter().copied().collect::<Vec<_>>(), vec![0.55, 0.0, -0.5, 0.55]);
        assert!(c.to_tensor(&[3, 2]).is_err());
    }

    #[test]
    fn invalid_parts_are_errors() {
        assert!(SharedWeights::new(vec![1.0], vec![0, 1]).is_err());
        assert!(SharedWeights::new(vec![f32::NAN], vec![0]).is_err());
        assert!(SharedWeights::new(vec![1.0], vec![0, SharedWeights::PRUNED]).is_ok());
        let w = ArrayD::zeros(vec![3]);
        assert!(SharedWeights::fit(&w, Some(&[true]), 2, Method::Exact).is_err());
        let (all_pruned, sse) =
            SharedWeights::fit(&w, Some(&[false; 3]), 2, Method::Exact).unwrap();
        assert_eq!((all_pruned.codebook().len(), all_pruned.pruned(), sse), (0, 3, 0.0));
    }
}
