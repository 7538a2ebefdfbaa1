//! From sensitivity curves to per-layer sparsities for one global target.
//!
//! Each unit picks one point of its curve. With the accuracy drops of the units taken as
//! additive, choosing the points that lose least for a size budget is a multiple-choice
//! knapsack; its Lagrangian relaxation splits it per unit: for a price `λ` per kept
//! weight, every unit takes the point minimising `drop + λ · cost of the kept weights`,
//! and `λ` is bisected until the budget holds. Layers whose accuracy barely moves are
//! pruned hard, sensitive ones are spared, with no hand-set number per layer.

use super::Sensitivity;
use crate::unstructured::Sparsity;
use crate::{PruneError, Result};
use serde::Serialize;
use std::collections::BTreeMap;

/// The one global target of an allocation.
///
/// ```
/// use deepcompress_prune::sensitivity::Budget;
/// let b = Budget::KeepFraction(0.05);
/// assert_eq!(b, Budget::KeepFraction(0.05));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    /// Keep at most this fraction of the analysed weights (a size ratio).
    KeepFraction(f64),
    /// Prune as much as possible while the predicted accuracy drop (sum of the units'
    /// drops, as a fraction, e.g. 0.003 for 0.3 points) stays at or below this.
    MaxDrop(f32),
}

/// Per-layer sparsities chosen by [`allocate`].
///
/// ```
/// use deepcompress_prune::sensitivity::Allocation;
/// let a = Allocation { sparsity: [("fc1".to_string(), 0.9)].into(), kept_fraction: 0.1, predicted_drop: 0.0 };
/// assert!(matches!(a.to_sparsity(), deepcompress_prune::unstructured::Sparsity::PerLayer(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allocation {
    /// Sparsity per layer path (every layer of a group gets the group's).
    pub sparsity: BTreeMap<String, f64>,
    /// Fraction of the analysed weights kept.
    pub kept_fraction: f64,
    /// Sum of the chosen points' accuracy drops (a prediction; pruning several layers
    /// at once usually costs more, fine-tuning recovers much of it).
    pub predicted_drop: f32,
}

impl Allocation {
    /// The allocation as a [`Sparsity::PerLayer`] target for the pruning passes.
    pub fn to_sparsity(&self) -> Sparsity {
        Sparsity::PerLayer(self.sparsity.clone())
    }
}

/// Chooses one point per curve for `budget`. `cost_per_weight` weighs a kept weight of a
/// layer (for example its bits after sharing and indexing); layers not listed cost 1.
///
/// ```
/// use deepcompress_prune::sensitivity::{allocate, Budget, Sensitivity, SensitivityCurve};
/// let curve = |name: &str, n, accs: [f32; 3]| SensitivityCurve {
///     layers: vec![name.into()], weights: n,
///     points: vec![(0.0, accs[0]), (0.5, accs[1]), (0.9, accs[2])],
/// };
/// let s = Sensitivity { baseline: 0.9, curves: vec![
///     curve("robust", 1000, [0.9, 0.9, 0.9]),
///     curve("fragile", 1000, [0.9, 0.8, 0.5]),
/// ]};
/// let a = allocate(&s, Budget::KeepFraction(0.6), &Default::default()).unwrap();
/// assert_eq!(a.sparsity["robust"], 0.9);
/// assert_eq!(a.sparsity["fragile"], 0.0);
/// ```
pub fn allocate(
    sens: &Sensitivity,
    budget: Budget,
    cost_per_weight: &BTreeMap<String, f64>,
) -> Result<Allocation> {
    if sens.curves.is_empty() {
        return Err(PruneError::param("sensitivity", "no curves", "nothing to allocate"));
    }
    match budget {
        Budget::KeepFraction(f) if !(f.is_finite() && f > 0.0 && f <= 1.0) => {
            return Err(PruneError::param("KeepFraction", f, "must be in (0, 1]"));
        }
        Budget::MaxDrop(d) if !(d.is_finite() && d >= 0.0) => {
            return Err(PruneError::param("MaxDrop", d, "must be finite and >= 0"));
        }
        _ => {}
    }
    let units: Vec<Unit> = sens
        .curves
        .iter()
        .map(|c| {
            let cost = c.layers.iter().map(|l| cost_per_weight.get(l).copied().unwrap_or(1.0));
            let cost = cost.sum::<f64>() / c.layers.len() as f64 * c.weights as f64;
            Unit { drops: c.drops(sens.baseline), cost }
        })
        .collect();
    let total_weights: f64 = sens.curves.iter().map(|c| c.weights as f64).sum();
    let total_cost: f64 = units.iter().map(|u| u.cost).sum();
    let choose = |lambda: f64| -> Vec<usize> { units.iter().map(|u| u.best(lambda)).collect() };
    let kept_cost = |pick: &[usize]| -> f64 {
        units.iter().zip(pick).map(|(u, &i)| u.cost * (1.0 - u.drops[i].0)).sum()
    };
    let drop = |pick: &[usize]| -> f32 { units.iter().zip(pick).map(|(u, &i)| u.drops[i].1).sum() };
    // λ = 0 prunes only what is free; a large λ prunes to the end of every curve.
    let ok = |pick: &[usize]| match budget {
        Budget::KeepFraction(f) => kept_cost(pick) <= f * total_cost + 1e-9,
        Budget::MaxDrop(_) => true,
    };
    let feasible = |pick: &[usize]| match budget {
        Budget::KeepFraction(_) => ok(pick),
        Budget::MaxDrop(d) => drop(pick) <= d + 1e-7,
    };
    let pick = match budget {
        Budget::KeepFraction(f) => {
            let mut hi = 1.0f64;
            while !ok(&choose(hi)) {
                hi *= 4.0;
                if hi > 1e30 {
                    return Err(PruneError::param(
                        "KeepFraction",
                        f,
                        "is below what the sparsest points of the curves reach",
                    ));
                }
            }
            let mut lo = 0.0f64;
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if ok(&choose(mid)) { hi = mid } else { lo = mid }
            }
            choose(hi)
        }
        Budget::MaxDrop(_) => {
            // the largest price (most pruning) whose choice still meets the drop
            let mut lo = 0.0f64;
            if !feasible(&choose(lo)) {
                return Err(PruneError::param("MaxDrop", "budget", "cannot be met even unpruned"));
            }
            let mut hi = 1.0f64;
            while feasible(&choose(hi)) && hi < 1e30 {
                hi *= 4.0;
            }
            for _ in 0..200 {
                let mid = 0.5 * (lo + hi);
                if feasible(&choose(mid)) { lo = mid } else { hi = mid }
            }
            choose(lo)
        }
    };
    let mut sparsity = BTreeMap::new();
    for (c, (u, &i)) in sens.curves.iter().zip(units.iter().zip(&pick)) {
        for l in &c.layers {
            sparsity.insert(l.clone(), u.drops[i].0);
        }
    }
    let kept: f64 = sens
        .curves
        .iter()
        .zip(&pick)
        .zip(&units)
        .map(|((c, &i), u)| c.weights as f64 * (1.0 - u.drops[i].0))
        .sum();
    Ok(Allocation { sparsity, kept_fraction: kept / total_weights, predicted_drop: drop(&pick) })
}

struct Unit {
    /// `(sparsity, drop)` with non-decreasing drop.
    drops: Vec<(f64, f32)>,
    /// Cost of keeping every weight of the unit.
    cost: f64,
}

impl Unit {
    /// The point minimising `drop + λ · kept cost`; ties go to the sparser point.
    fn best(&self, lambda: f64) -> usize {
        let mut best = 0;
        let mut best_v = f64::INFINITY;
        for (i, &(s, d)) in self.drops.iter().enumerate() {
            let v = d as f64 + lambda * self.cost * (1.0 - s);
            if v <= best_v {
                best = i;
                best_v = v;
            }
        }
        best
    }
}
