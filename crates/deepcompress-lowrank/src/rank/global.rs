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

/// What [`allocate`] decides for one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Choice {
    /// Keep the layer as it is.
    Dense,
    /// Factor the matrix at this rank.
    Rank(usize),
    /// Tucker-2 with ranks `(r_out, r_in)`.
    Tucker(usize, usize),
}

/// How a candidate layer can be factored, with the energies the allocator weighs.
#[derive(Debug, Clone, PartialEq)]
pub enum Form {
    /// An `m x n` matrix (a Linear, or a Conv2d as `[out, in*kh*kw]`) with its singular
    /// values, descending.
    Matrix {
        /// `(m, n)`.
        shape: (usize, usize),
        /// Singular values, descending.
        spectrum: Vec<f32>,
    },
    /// A convolution kernel `[n, c, kh, kw]` for Tucker-2, with the energies `σ²` of its
    /// output-channel and input-channel unfoldings, descending (the HOSVD error bound:
    /// dropping components loses at most their energies).
    Tucker {
        /// `(n, c, kh, kw)`.
        kernel: (usize, usize, usize, usize),
        /// Energies of the output-channel unfolding.
        out_energy: Vec<f64>,
        /// Energies of the input-channel unfolding.
        in_energy: Vec<f64>,
    },
}

/// One layer offered to [`allocate`]: how it can be factored and what it costs.
///
/// ```
/// use deepcompress_lowrank::rank::Candidate;
/// let c = Candidate::new("fc1", (300, 784), vec![3.0, 2.0, 1.0], 300, 1);
/// assert_eq!(c.dense_params(), 300 * 784 + 300);
/// let t = Candidate::tucker("conv2", (50, 20, 5, 5), vec![1.0; 50], vec![2.5; 20], 50, (144, 64));
/// assert_eq!(t.dense_params(), 25_050);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Layer path.
    pub path: String,
    /// The factorisation the layer is offered for.
    pub form: Form,
    /// Parameters that factorisation does not change (the bias).
    pub fixed_params: u64,
    /// Multiply-accumulates per weight per sample: output positions of a Conv2d, 1 for a
    /// Linear.
    pub macs_per_weight: u64,
    /// Input positions of a Conv2d (the first 1x1 of a Tucker-2 chain runs there), 1 for a
    /// Linear.
    pub macs_per_weight_in: u64,
}

impl Candidate {
    /// A matrix candidate: shape `(m, n)`, singular values, bias size, MACs per weight.
    pub fn new(
        path: &str,
        shape: (usize, usize),
        spectrum: Vec<f32>,
        fixed_params: u64,
        macs_per_weight: u64,
    ) -> Self {
        Self {
            path: path.to_string(),
            form: Form::Matrix { shape, spectrum },
            fixed_params,
            macs_per_weight,
            macs_per_weight_in: macs_per_weight,
        }
    }

    /// A Tucker-2 candidate: kernel `(n, c, kh, kw)`, unfolding energies, bias size, and
    /// the input and output positions of the convolution.
    pub fn tucker(
        path: &str,
        kernel: (usize, usize, usize, usize),
        out_energy: Vec<f64>,
        in_energy: Vec<f64>,
        fixed_params: u64,
        (positions_in, positions_out): (u64, u64),
    ) -> Self {
        Self {
            path: path.to_string(),
            form: Form::Tucker { kernel, out_energy, in_energy },
            fixed_params,
            macs_per_weight: positions_out,
            macs_per_weight_in: positions_in,
        }
    }

    /// Parameters when left dense.
    pub fn dense_params(&self) -> u64 {
        self.params(Choice::Dense) + self.fixed_params
    }

    /// Weights of a choice (the bias excluded).
    fn params(&self, choice: Choice) -> u64 {
        self.cost(choice, false)
    }

    /// Weights, or with `macs` multiply-accumulates per sample, of a choice.
    fn cost(&self, choice: Choice, macs: bool) -> u64 {
        let (pin, pout) =
            if macs { (self.macs_per_weight_in, self.macs_per_weight) } else { (1, 1) };
        match (&self.form, choice) {
            (Form::Matrix { shape: (m, n), .. }, Choice::Dense) => (m * n) as u64 * pout,
            (Form::Matrix { shape: (m, n), .. }, Choice::Rank(r)) => (r * (m + n)) as u64 * pout,
            (Form::Tucker { kernel: (n, c, kh, kw), .. }, Choice::Dense) => {
                (n * c * kh * kw) as u64 * pout
            }
            (Form::Tucker { kernel: (n, c, kh, kw), .. }, Choice::Tucker(ro, ri)) => {
                (c * ri) as u64 * pin + (ri * ro * kh * kw + ro * n) as u64 * pout
            }
            _ => unreachable!("choices are made for their own form"),
        }
    }

    /// Total energy `||W||²` (at least the smallest positive number).
    fn total_energy(&self) -> f64 {
        let e: f64 = match &self.form {
            Form::Matrix { spectrum, .. } => spectrum.iter().map(|&s| (s as f64).powi(2)).sum(),
            Form::Tucker { out_energy, .. } => out_energy.iter().sum(),
        };
        e.max(f64::MIN_POSITIVE)
    }

    /// Energy a choice drops (the HOSVD bound for Tucker-2).
    fn dropped(&self, choice: Choice) -> f64 {
        match (&self.form, choice) {
            (_, Choice::Dense) => 0.0,
            (Form::Matrix { spectrum, .. }, Choice::Rank(r)) => {
                spectrum.iter().skip(r).map(|&s| (s as f64).powi(2)).sum()
            }
            (Form::Tucker { out_energy, in_energy, .. }, Choice::Tucker(ro, ri)) => {
                out_energy.iter().skip(ro).sum::<f64>() + in_energy.iter().skip(ri).sum::<f64>()
            }
            _ => unreachable!("choices are made for their own form"),
        }
    }

    /// The cheapest choice: rank 1 (or (1, 1)) when that saves anything.
    fn smallest(&self, macs: bool) -> Choice {
        let least = match self.form {
            Form::Matrix { .. } => Choice::Rank(1),
            Form::Tucker { .. } => Choice::Tucker(1, 1),
        };
        if self.cost(least, macs) < self.cost(Choice::Dense, macs) { least } else { Choice::Dense }
    }

    /// The next, smaller choice after `from`, or `None` at the smallest. From dense it is
    /// the largest factored form that is smaller than the dense layer.
    fn next(&self, from: Choice, macs: bool) -> Option<Choice> {
        let dense = self.cost(Choice::Dense, macs);
        match (&self.form, from) {
            (Form::Matrix { shape: (m, n), .. }, Choice::Dense) => {
                // Largest r with r (m + n) < m n, at most min(m, n).
                let r = ((m * n - 1) / (m + n)).min(*m.min(n));
                (r >= 1).then_some(Choice::Rank(r))
            }
            (Form::Matrix { .. }, Choice::Rank(r)) => (r > 1).then(|| Choice::Rank(r - 1)),
            (Form::Tucker { kernel: (n, c, ..), .. }, Choice::Dense) => {
                // Walk down from full ranks by the cheapest steps until smaller than dense.
                let mut at = Choice::Tucker(*n, *c);
                while self.cost(at, macs) >= dense {
                    at = self.best_decrement(at, macs)?;
                }
                Some(at)
            }
            (Form::Tucker { .. }, t @ Choice::Tucker(..)) => self.best_decrement(t, macs),
            _ => unreachable!("choices are made for their own form"),
        }
    }

    /// Of `(r_out - 1, r_in)` and `(r_out, r_in - 1)`, the one losing least per unit saved.
    fn best_decrement(&self, from: Choice, macs: bool) -> Option<Choice> {
        let Choice::Tucker(ro, ri) = from else { return None };
        let options = [
            (ro > 1).then(|| Choice::Tucker(ro - 1, ri)),
            (ri > 1).then(|| Choice::Tucker(ro, ri - 1)),
        ];
        options
            .into_iter()
            .flatten()
            .map(|to| (to, self.loss_per_unit(from, to, macs)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(to, _)| to)
    }

    /// Relative energy lost per unit of cost saved going from `from` to `to`.
    fn loss_per_unit(&self, from: Choice, to: Choice, macs: bool) -> f64 {
        let saved = self.cost(from, macs).saturating_sub(self.cost(to, macs)).max(1) as f64;
        (self.dropped(to) - self.dropped(from)) / self.total_energy() / saved
    }
}

/// A possible next step for one layer.
struct Step {
    layer: usize,
    to: Choice,
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

/// Picks a [`Choice`] for every candidate so that the selected layers meet `budget` with
/// the least total relative energy dropped, by the greedy rule above. Matrix candidates
/// give up singular components, Tucker-2 candidates channel components of either mode.
///
/// Errors: an invalid budget, no candidates, or a budget below what the smallest
/// factorisation of every layer gives (the message states that minimum).
///
/// ```
/// use deepcompress_lowrank::rank::{allocate, Budget, Candidate, Choice};
/// // Two 100x100 layers: the first has a fast-decaying spectrum, the second a flat one.
/// let fast: Vec<f32> = (0..100).map(|i| 0.7_f32.powi(i)).collect();
/// let flat = vec![1.0_f32; 100];
/// let layers = [Candidate::new("a", (100, 100), fast, 0, 1), Candidate::new("b", (100, 100), flat, 0, 1)];
/// let choices = allocate(&layers, Budget::ParamFraction(0.6))?;
/// // The flat layer is worth keeping dense; the fast one gives up its tail.
/// assert_eq!(choices[1], Choice::Dense);
/// // 12,000 of 20,000 parameters: 10,000 for `b`, 10 x (100 + 100) for `a`.
/// assert_eq!(choices[0], Choice::Rank(10));
/// assert!(allocate(&layers, Budget::Params(100)).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn allocate(layers: &[Candidate], budget: Budget) -> Result<Vec<Choice>> {
    budget.check()?;
    if layers.is_empty() {
        return Err(LowRankError::NothingSelected {
            what: "Linear or Conv2d".into(),
            hint: " to allocate ranks to".into(),
        });
    }
    let macs = budget.uses_macs();
    let fixed: u64 =
        layers.iter().map(|c| c.fixed_params * if macs { c.macs_per_weight } else { 1 }).sum();
    let dense: u64 = layers.iter().map(|c| c.cost(Choice::Dense, macs)).sum::<u64>() + fixed;
    let limit = match budget {
        Budget::ParamFraction(f) | Budget::MacFraction(f) => (f * dense as f64).floor() as u64,
        Budget::Params(p) => p,
        Budget::Bytes(b) => b / 4,
    };
    let floor: u64 = layers.iter().map(|c| c.cost(c.smallest(macs), macs)).sum::<u64>() + fixed;
    if floor > limit {
        let what = if macs { "multiply-accumulates" } else { "parameters" };
        return Err(LowRankError::Budget {
            reason: format!(
                "{budget:?} allows {limit} {what}, but rank 1 in every layer still needs {floor} (dense: {dense})"
            ),
        });
    }

    let mut choices = vec![Choice::Dense; layers.len()];
    let mut total = dense;
    let step = |i: usize, from: Choice| -> Option<Step> {
        let to = layers[i].next(from, macs)?;
        Some(Step { layer: i, to, loss_per_unit: layers[i].loss_per_unit(from, to, macs) })
    };
    let mut heap: BinaryHeap<Step> =
        (0..layers.len()).filter_map(|i| step(i, Choice::Dense)).collect();
    while total > limit {
        let Some(s) = heap.pop() else { break };
        let c = &layers[s.layer];
        total -= c.cost(choices[s.layer], macs) - c.cost(s.to, macs);
        choices[s.layer] = s.to;
        heap.extend(step(s.layer, s.to));
    }
    Ok(choices)
}
