//! Per-layer sensitivity: accuracy against sparsity, one layer (or coupled group) at a
//! time, on a validation set.
//!
//! The survey (Cheng et al. 2018) notes that "all pruning criteria require manual setup
//! of sensitivity for layers". These curves are that setup, measured; the
//! [`allocate`](super::allocate) step turns them into per-layer sparsities.

use crate::targets::{weight, weight_layers};
use crate::unstructured::{MagnitudePrune, Sparsity};
use crate::{PruneError, Result};
use deepcompress_core::data::Dataset;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::evaluate;
use serde::Serialize;
use std::fmt::Write;

/// Prunes the layers of one unit to a sparsity; the default is unstructured magnitude.
pub type PruneFn = dyn Fn(&mut Model, &[String], f64) -> Result<()> + Sync;

/// Accuracy of the model with one unit pruned, at each sparsity tried.
///
/// ```
/// use deepcompress_prune::sensitivity::SensitivityCurve;
/// let c = SensitivityCurve { layers: vec!["fc1".into()], weights: 100, points: vec![(0.0, 0.9), (0.5, 0.8)] };
/// assert_eq!(c.max_sparsity_within(0.9, 0.05), 0.0);
/// assert_eq!(c.max_sparsity_within(0.9, 0.1), 0.5);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SensitivityCurve {
    /// Layers pruned together (one layer, or a group coupled through a residual add).
    pub layers: Vec<String>,
    /// Weights in those layers.
    pub weights: usize,
    /// `(sparsity, accuracy)` in increasing sparsity.
    pub points: Vec<(f64, f32)>,
}

impl SensitivityCurve {
    /// The largest sparsity tried up to which every point stays within `drop` of
    /// `baseline` (a noisy curve cannot jump past a bad point).
    pub fn max_sparsity_within(&self, baseline: f32, drop: f32) -> f64 {
        let mut best = 0.0;
        for &(s, a) in &self.points {
            if baseline - a > drop {
                break;
            }
            best = s;
        }
        best
    }

    /// Accuracy drop at each point, made non-decreasing in sparsity (pruning more never
    /// counts as helping; noise in the validation accuracy would otherwise).
    pub fn drops(&self, baseline: f32) -> Vec<(f64, f32)> {
        let mut worst = 0.0f32;
        self.points
            .iter()
            .map(|&(s, a)| {
                worst = worst.max(baseline - a);
                (s, worst)
            })
            .collect()
    }
}

/// The result of a sensitivity analysis: the dense accuracy and one curve per unit.
///
/// ```
/// use deepcompress_prune::sensitivity::{Sensitivity, SensitivityCurve};
/// let s = Sensitivity { baseline: 0.9, curves: vec![SensitivityCurve {
///     layers: vec!["fc1".into()], weights: 100, points: vec![(0.0, 0.9), (0.5, 0.85)] }] };
/// assert!(s.to_markdown().contains("| fc1 | 100 | 90.00 | 85.00 |"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sensitivity {
    /// Accuracy of the unpruned model on the validation set.
    pub baseline: f32,
    /// One curve per unit.
    pub curves: Vec<SensitivityCurve>,
}

impl Sensitivity {
    /// A Markdown table: one row per unit, one column per sparsity (accuracy in %). When
    /// the curves were measured at different sparsities (structured curves round to
    /// whole channels), one column lists `sparsity: accuracy` pairs instead.
    ///
    /// ```
    /// use deepcompress_prune::sensitivity::{Sensitivity, SensitivityCurve};
    /// let c = |n: &str, p: Vec<(f64, f32)>| SensitivityCurve { layers: vec![n.into()], weights: 8, points: p };
    /// let s = Sensitivity { baseline: 0.9, curves: vec![
    ///     c("a", vec![(0.0, 0.9), (0.5, 0.8)]), c("b", vec![(0.0, 0.9), (0.25, 0.7)])] };
    /// assert!(s.to_markdown().contains("| b | 8 | 0 %: 90.00, 25 %: 70.00 |"));
    /// ```
    pub fn to_markdown(&self) -> String {
        let grid: Vec<f64> =
            self.curves.first().map(|c| c.points.iter().map(|p| p.0).collect()).unwrap_or_default();
        let same =
            self.curves.iter().all(|c| c.points.iter().map(|p| p.0).eq(grid.iter().copied()));
        if !same {
            let mut out =
                String::from("| layer | weights | accuracy (%) by sparsity |\n|---|---:|---|");
            for c in &self.curves {
                let cells: Vec<String> = c
                    .points
                    .iter()
                    .map(|(s, a)| format!("{:.0} %: {:.2}", 100.0 * s, 100.0 * a))
                    .collect();
                let _ = write!(
                    out,
                    "\n| {} | {} | {} |",
                    c.layers.join(" + "),
                    c.weights,
                    cells.join(", ")
                );
            }
            out.push('\n');
            return out;
        }
        let mut out = String::from("| layer | weights |");
        for s in &grid {
            let _ = write!(out, " {:.0} % |", 100.0 * s);
        }
        out.push_str("\n|---|---:|");
        out.push_str(&"---:|".repeat(grid.len()));
        for c in &self.curves {
            let _ = write!(out, "\n| {} | {} |", c.layers.join(" + "), c.weights);
            for (_, a) in &c.points {
                let _ = write!(out, " {:.2} |", 100.0 * a);
            }
        }
        out.push('\n');
        out
    }
}

/// Sensitivity analysis settings.
///
/// ```
/// use deepcompress_core::data::{Mnist, MNIST_MEAN, MNIST_STD};
/// use deepcompress_core::model::Selector;
/// use deepcompress_prune::sensitivity::SensitivityAnalysis;
/// let val = Mnist::embedded().unwrap().test.take(200).normalize(MNIST_MEAN, MNIST_STD).unwrap();
/// let model = deepcompress_core::models::lenet_300_100(0);
/// let s = SensitivityAnalysis::new(Selector::all()).sparsities(vec![0.0, 0.5, 0.9])
///     .run(&model, &val).unwrap();
/// assert_eq!(s.curves.len(), 3);
/// assert_eq!(s.curves[0].points.len(), 3);
/// assert_eq!(s.curves[0].points[0].1, s.baseline); // sparsity 0 is the dense model
/// ```
pub struct SensitivityAnalysis {
    selector: Selector,
    sparsities: Vec<f64>,
    groups: Vec<Vec<String>>,
    prune: Box<PruneFn>,
}

impl std::fmt::Debug for SensitivityAnalysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensitivityAnalysis")
            .field("selector", &self.selector)
            .field("sparsities", &self.sparsities)
            .field("groups", &self.groups)
            .finish()
    }
}

/// The default sparsity grid: coarse where little happens, fine near the end.
pub const DEFAULT_SPARSITIES: [f64; 14] =
    [0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.92, 0.94, 0.96, 0.97, 0.98, 0.99];

impl SensitivityAnalysis {
    /// Curves for every selected `Linear` and `Conv2d`, magnitude pruning, on
    /// [`DEFAULT_SPARSITIES`].
    pub fn new(selector: Selector) -> Self {
        Self {
            selector,
            sparsities: DEFAULT_SPARSITIES.to_vec(),
            groups: Vec::new(),
            prune: Box::new(|m, layers, s| {
                let mut sel = Selector::path(&layers[0]);
                for l in &layers[1..] {
                    sel = sel.include(l);
                }
                MagnitudePrune::new(sel, Sparsity::Uniform(s))
                    .apply(m, &mut PassContext::new(0))
                    .map(|_| ())
                    .map_err(PruneError::Core)
            }),
        }
    }

    /// The sparsities to try, increasing, each in `[0, 1)`.
    pub fn sparsities(mut self, s: Vec<f64>) -> Self {
        self.sparsities = s;
        self
    }

    /// Layers that must be pruned together (channels coupled through a residual add);
    /// each group gets one curve and the allocator one sparsity for it.
    pub fn group(mut self, layers: &[&str]) -> Self {
        self.groups.push(layers.iter().map(|s| s.to_string()).collect());
        self
    }

    /// Replaces the pruning used for each unit (structured pruning plugs in here).
    pub fn prune_with(mut self, f: Box<PruneFn>) -> Self {
        self.prune = f;
        self
    }

    /// The units: the groups, then every other selected layer alone.
    fn units(&self, model: &Model) -> Result<Vec<Vec<String>>> {
        let layers = weight_layers(model, &self.selector)?;
        for (i, s) in self.sparsities.iter().enumerate() {
            crate::error::check_sparsity("sensitivity sparsity", *s)?;
            if i > 0 && *s <= self.sparsities[i - 1] {
                return Err(PruneError::param("sparsities", s, "must be increasing"));
            }
        }
        if self.sparsities.is_empty() {
            return Err(PruneError::param("sparsities", "[]", "need at least one sparsity"));
        }
        let mut units = self.groups.clone();
        for g in &units {
            for l in g {
                if !layers.iter().any(|(p, _)| p == l) {
                    return Err(PruneError::NothingSelected {
                        what: format!("Linear or Conv2d `{l}`"),
                        hint: " (a sensitivity group names a layer the selector does not pick)"
                            .into(),
                    });
                }
            }
        }
        for (p, _) in layers {
            if !units.iter().any(|g| g.contains(&p)) {
                units.push(vec![p]);
            }
        }
        Ok(units)
    }

    /// Measures the curves on `val`. The model is not changed (each point prunes a copy).
    pub fn run(&self, model: &Model, val: &Dataset) -> Result<Sensitivity> {
        let units = self.units(model)?;
        let mut base = model.clone();
        let baseline = evaluate(&mut base, val, 500)?.accuracy;
        let mut curves = Vec::with_capacity(units.len());
        for unit in units {
            let weights =
                unit.iter().map(|p| weight(model, p).map(|w| w.len())).sum::<Result<usize>>()?;
            let mut points = Vec::with_capacity(self.sparsities.len());
            for &s in &self.sparsities {
                let acc = if s == 0.0 {
                    baseline
                } else {
                    let mut m = model.clone();
                    (self.prune)(&mut m, &unit, s)?;
                    evaluate(&mut m, val, 500)?.accuracy
                };
                points.push((s, acc));
            }
            curves.push(SensitivityCurve { layers: unit, weights, points });
        }
        Ok(Sensitivity { baseline, curves })
    }
}
