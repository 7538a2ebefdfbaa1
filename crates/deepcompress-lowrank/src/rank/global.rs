//! Global rank allocation: one budget for the whole model instead of a rank per layer.
//!
//! Every selected layer offers its singular components; the allocator drops, across all
//! layers, the component whose loss per unit of budget saved is smallest, until the model
//! fits. The loss of a component is its share `σᵢ² / Σσ²` of the layer's (whitened, when
//! data-aware) energy, so layers of different scale compare fairly. A layer stays dense
//! while its factored form would not be smaller, so the first step of a layer jumps from
//! dense to the largest rank that saves anything.

use crate::error::{LowRankError, Result};
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A model-wide budget over the selected layers.
///
/// ```
/// use deepcompress_lowrank::rank::Budget;
/// assert!(Budget::ParamFraction(0.25).check().is_ok());
/// assert!(Budget::ParamFraction(0.0).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Budget {
    /// At most this fraction, in `(0, 1]`, of the selected layers' parameters (weights and
    /// biases).
    ParamFraction(f64),
    /// At most this many parameters in the selected layers.
    Params(u64),
    /// At most this fraction, in `(0, 1]`, of the selected layers' multiply-accumulates.
    MacFraction(f64),
    /// At most this many bytes of `f32` parameters in the selected layers.
    Bytes(u64),
}

impl Budget {
    /// Checks the budget's own parameter.
    pub fn check(&self) -> Result<()> {
        match *self {
            Budget::ParamFraction(f) | Budget::MacFraction(f) if !(f > 0.0 && f <= 1.0) => {
                Err(LowRankError::param("budget fraction", f, "must be in (0, 1]"))
            }
            Budget::Params(0) | Budget::Bytes(0) => {
                Err(LowRankError::param("budget", 0, "must be positive"))
            }
            _ => Ok(()),
        }
    }

    fn uses_macs(&self) -> bool {
        matches!(self, Budget::MacFraction(_))
    }
}

/// One layer offered to [`allocate`]: its matrix shape, spectrum and costs.
///
/// ```
/// use deepcompress_lowrank::rank::Candidate;
/// let c = Candidate::new("fc1", (300, 784), vec![3.0, 2.0, 1.0], 300, 1);
/// assert_eq!(c.dense_params(), 300 * 784 + 300);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Layer path.
    pub path: String,
    /// Matrix shape `(m, n)`: `(out, in)` for a Linear, `(out, in*kh*kw)` for a Conv2d.
    pub shape: (usize, usize),
    /// Singular values, descending.
    pub spectrum: Vec<f32>,
    /// Parameters that factorisation does not change (the bias).
    pub fixed_params: u64,
    /// Multiply-accumulates per weight per sample (output positions of a Conv2d, 1 for a
    /// Linear).
    pub macs_per_weight: u64,
}

impl Candidate {
    /// A candidate layer.
    pub fn new(
        path: &str,
        shape: (usize, usize),
        spectrum: Vec<f32>,
        fixed_params: u64,
        macs_per_weight: u64,
    ) -> Self {
        Self { path: path.to_string(), shape, spectrum, fixed_params, macs_per_weight }
    }

    /// Parameters when left dense.
    pub fn dense_params(&self) -> u64 {
        (self.shape.0 * self.shape.1) as u64 + self.fixed_params
    }

    /// Weights at rank `r` (`r (m + n)`), or the dense count for `None`.
    fn weights(&self, rank: Option<usize>) -> u64 {
        let (m, n) = self.shape;
        match rank {
            None => (m * n) as u64,
            Some(r) => (r * (m + n)) as u64,
        }
    }

    /// The largest rank whose factors are smaller than the dense weight, if any.
    fn largest_saving_rank(&self) -> Option<usize> {
        let (m, n) = self.shape;
        let r = (m * n - 1) / (m + n);
        (r >= 1).then_some(r.min(m.min(n)))
    }

    fn energy(&self, from: usize) -> f64 {
        self.spectrum.iter().skip(from).map(|&s| (s as f64).powi(2)).sum()
    }
}

/// A possible next step for one layer: go from `from` to `to`.
struct Step {
    layer: usize,
    to: usize,
    loss_per_unit: f64,
}

impl PartialEq for Step {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Step {}
impl PartialOrd for Step {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Step {
    // A max-heap on the negated key: the cheapest loss per unit first, ties to the
    // earlier layer so the result does not depend on the heap's internals.
    fn cmp(&self, o: &Self) -> Ordering {
        o.loss_per_unit.total_cmp(&self.loss_per_unit).then(o.layer.cmp(&self.layer))
    }
}

/// Picks a rank for every candidate (`None`: keep dense) so that the selected layers meet
/// `budget` with the least total relative energy dropped, by the greedy rule above.
///
/// Errors: an invalid budget, no candidates, or a budget below what rank 1 everywhere
/// gives (the message states that minimum).
///
/// ```
/// use deepcompress_lowrank::rank::{allocate, Budget, Candidate};
/// // Two 100x100 layers: the first has a fast-decaying spectrum, the second a flat one.
/// let fast: Vec<f32> = (0..100).map(|i| 0.7_f32.powi(i)).collect();
/// let flat = vec![1.0_f32; 100];
/// let layers = [Candidate::new("a", (100, 100), fast, 0, 1), Candidate::new("b", (100, 100), flat, 0, 1)];
/// let ranks = allocate(&layers, Budget::ParamFraction(0.6))?;
/// // The flat layer is worth keeping dense; the fast one gives up its tail.
/// assert_eq!(ranks[1], None);
/// // 12,000 of 20,000 parameters: 10,000 for `b`, 10 x (100 + 100) for `a`.
/// assert_eq!(ranks[0], Some(10));
/// assert!(allocate(&layers, Budget::Params(100)).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn allocate(layers: &[Candidate], budget: Budget) -> Result<Vec<Option<usize>>> {
    budget.check()?;
    if layers.is_empty() {
        return Err(LowRankError::NothingSelected {
            what: "Linear or Conv2d".into(),
            hint: " to allocate ranks to".into(),
        });
    }
    let unit = |c: &Candidate| if budget.uses_macs() { c.macs_per_weight } else { 1 };
    let cost = |c: &Candidate, r: Option<usize>| c.weights(r) * unit(c);
    let fixed: u64 = layers.iter().map(|c| c.fixed_params * unit(c)).sum();
    let dense: u64 = layers.iter().map(|c| cost(c, None)).sum::<u64>() + fixed;
    let limit = match budget {
        Budget::ParamFraction(f) | Budget::MacFraction(f) => (f * dense as f64).floor() as u64,
        Budget::Params(p) => p,
        Budget::Bytes(b) => b / 4,
    };
    let floor: u64 = layers
        .iter()
        .map(|c| cost(c, if c.largest_saving_rank().is_some() { Some(1) } else { None }))
        .sum::<u64>()
        + fixed;
    if floor > limit {
        let what = if budget.uses_macs() { "multiply-accumulates" } else { "parameters" };
        return Err(LowRankError::Budget {
            reason: format!(
                "{budget:?} allows {limit} {what}, but rank 1 in every layer still needs {floor} (dense: {dense})"
            ),
        });
    }

    let mut ranks: Vec<Option<usize>> = vec![None; layers.len()];
    let mut total = dense;
    let mut heap = BinaryHeap::new();
    let totals: Vec<f64> = layers.iter().map(|c| c.energy(0).max(f64::MIN_POSITIVE)).collect();
    let step = |i: usize, from: Option<usize>| -> Option<Step> {
        let c = &layers[i];
        let to = match from {
            None => c.largest_saving_rank()?,
            Some(1) => return None,
            Some(r) => r - 1,
        };
        let saved = (cost(c, from) - cost(c, Some(to))) as f64;
        let lost = (c.energy(to) - from.map_or(0.0, |r| c.energy(r))) / totals[i];
        Some(Step { layer: i, to, loss_per_unit: lost / saved })
    };
    heap.extend((0..layers.len()).filter_map(|i| step(i, None)));
    while total > limit {
        let Some(s) = heap.pop() else { break };
        let c = &layers[s.layer];
        total -= cost(c, ranks[s.layer]) - cost(c, Some(s.to));
        ranks[s.layer] = Some(s.to);
        heap.extend(step(s.layer, Some(s.to)));
    }
    Ok(ranks)
}
