//! [`MagnitudePrune`]: the unstructured pruning pass (per layer, global, N:M, block).

use super::{block_mask, global_magnitude_masks, magnitude_mask, n_m_mask};
use crate::mask::Mask;
use crate::targets::{weight, weight_layers, weight_mut};
use crate::{PruneError, Result};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use ndarray::ArrayD;
use std::collections::BTreeMap;

/// How much to prune.
///
/// ```
/// use deepcompress_prune::unstructured::Sparsity;
/// let s = Sparsity::per_layer([("fc1", 0.92), ("fc2", 0.91)]);
/// assert!(matches!(s, Sparsity::PerLayer(_)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Sparsity {
    /// The same fraction in every selected layer.
    Uniform(f64),
    /// A fraction per layer path; selected layers not listed are left alone.
    PerLayer(BTreeMap<String, f64>),
    /// One magnitude threshold across all selected layers, pruning this fraction of
    /// their weights in total (unstructured pattern only).
    Global(f64),
}

impl Sparsity {
    /// [`Sparsity::PerLayer`] from `(path, fraction)` pairs.
    pub fn per_layer<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Self {
        Sparsity::PerLayer(pairs.into_iter().map(|(p, s)| (p.to_string(), s)).collect())
    }
}

/// Which weights may be pruned together.
///
/// ```
/// use deepcompress_prune::unstructured::Pattern;
/// assert_eq!(Pattern::default(), Pattern::Unstructured);
/// assert_eq!(Pattern::two_four(), Pattern::NM { n: 2, m: 4 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// Any weight (the finest pattern; needs a sparse kernel to run faster).
    #[default]
    Unstructured,
    /// `n` kept in every `m` consecutive inputs; the sparsity is fixed at `1 - n/m`.
    NM {
        /// Weights kept per group.
        n: usize,
        /// Group size.
        m: usize,
    },
    /// Whole `rows x cols` blocks of the `[out, in]` weight.
    Block {
        /// Block height (outputs).
        rows: usize,
        /// Block width (inputs).
        cols: usize,
    },
}

impl Pattern {
    /// NVIDIA's 2:4 pattern.
    pub fn two_four() -> Self {
        Pattern::NM { n: 2, m: 4 }
    }
}

/// Magnitude pruning of `Linear` and `Conv2d` weights, held through retraining by a
/// [`Mask`] (Han, Pool, Tran and Dally 2015, arXiv 1506.02626).
///
/// The exact number of weights asked for is pruned (`round(sparsity * n)` per layer, or
/// in total for [`Sparsity::Global`]); weights pruned by an earlier mask stay pruned, so
/// calling it with growing sparsities is iterative or gradual pruning. Use
/// [`Sparsify`](crate::sparse::Sparsify) afterwards to store the result as CSR.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::unstructured::{MagnitudePrune, Sparsity};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let pass = MagnitudePrune::new(Selector::all(), Sparsity::Global(0.9));
/// pass.apply(&mut model, &mut PassContext::new(0)).unwrap();
/// let zeros = model.layer_as::<deepcompress_core::layer::Linear>("fc1").unwrap()
///     .weight.value().iter().filter(|v| **v == 0.0).count();
/// assert!(zeros > 200_000);
/// ```
#[derive(Debug, Clone)]
pub struct MagnitudePrune {
    selector: Selector,
    sparsity: Sparsity,
    pattern: Pattern,
}

impl MagnitudePrune {
    /// Unstructured magnitude pruning of the selected layers.
    pub fn new(selector: Selector, sparsity: Sparsity) -> Self {
        Self { selector, sparsity, pattern: Pattern::Unstructured }
    }

    /// N:M pruning of the selected layers (sparsity `1 - n/m`).
    pub fn n_m(selector: Selector, n: usize, m: usize) -> Self {
        let s = if m > 0 { 1.0 - n as f64 / m as f64 } else { 0.0 };
        Self { selector, sparsity: Sparsity::Uniform(s), pattern: Pattern::NM { n, m } }
    }

    /// Sets the pattern.
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = pattern;
        self
    }

    /// The layers and the sparsity each gets, checked.
    fn plan(&self, model: &Model) -> Result<Vec<(String, f64)>> {
        let layers = weight_layers(model, &self.selector)?;
        let plan: Vec<(String, f64)> = match &self.sparsity {
            Sparsity::Uniform(s) | Sparsity::Global(s) => {
                crate::error::check_sparsity("sparsity", *s)?;
                layers.into_iter().map(|(p, _)| (p, *s)).collect()
            }
            Sparsity::PerLayer(map) => {
                for (p, s) in map {
                    crate::error::check_sparsity(&format!("sparsity of `{p}`"), *s)?;
                    if !layers.iter().any(|(l, _)| l == p) {
                        return Err(PruneError::NothingSelected {
                            what: format!("Linear or Conv2d `{p}`"),
                            hint:
                                " (a per-layer sparsity names a layer the selector does not pick)"
                                    .into(),
                        });
                    }
                }
                layers.into_iter().filter_map(|(p, _)| map.get(&p).map(|s| (p, *s))).collect()
            }
        };
        if matches!(self.sparsity, Sparsity::Global(_)) && self.pattern != Pattern::Unstructured {
            return Err(PruneError::param(
                "sparsity",
                "Global",
                "one global threshold needs the unstructured pattern",
            ));
        }
        for (p, _) in &plan {
            let shape = weight(model, p)?.value().shape().to_vec();
            match self.pattern {
                Pattern::Unstructured => {}
                Pattern::NM { n, m } => super::n_m::check_n_m(n, m, &shape, p)?,
                Pattern::Block { rows, cols } => super::block::check_block(rows, cols, &shape, p)?,
            }
        }
        Ok(plan)
    }

    /// The new keep-mask of each planned layer.
    fn masks(&self, model: &Model, plan: &[(String, f64)]) -> Result<Vec<ArrayD<bool>>> {
        let params: Vec<_> = plan.iter().map(|(p, _)| weight(model, p)).collect::<Result<_>>()?;
        let previous: Vec<Option<&ArrayD<bool>>> =
            params.iter().map(|w| Mask::of(w).map(|m| m.keep())).collect();
        let count = |n: usize, s: f64| (s * n as f64).round() as usize;
        if let Sparsity::Global(s) = self.sparsity {
            let layers: Vec<_> =
                params.iter().zip(&previous).map(|(w, p)| (w.value(), *p)).collect();
            let total = layers.iter().map(|(v, _)| v.len()).sum();
            return Ok(global_magnitude_masks(&layers, count(total, s)));
        }
        plan.iter()
            .zip(params.iter().zip(&previous))
            .map(|((_, s), (w, prev))| {
                let v = w.value();
                let keep = match self.pattern {
                    Pattern::Unstructured => magnitude_mask(v, *prev, count(v.len(), *s)),
                    Pattern::NM { n, m } => n_m_mask(v, n, m)?,
                    Pattern::Block { rows, cols } => {
                        let blocks = v.len() / (rows * cols);
                        block_mask(v, rows, cols, count(blocks, *s))?
                    }
                };
                // an earlier mask stays in force (N:M and block masks are not nested)
                Ok(match prev {
                    Some(p) => ndarray::Zip::from(&keep).and(*p).map_collect(|a, b| *a && *b),
                    None => keep,
                })
            })
            .collect()
    }
}

impl Pass for MagnitudePrune {
    fn name(&self) -> String {
        match self.pattern {
            Pattern::Unstructured => "magnitude-prune".into(),
            Pattern::NM { n, m } => format!("prune-{n}:{m}"),
            Pattern::Block { rows, cols } => format!("block-prune-{rows}x{cols}"),
        }
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.plan(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        _ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let plan = self.plan(model).map_err(|e| e.into_core(&name))?;
        let masks = self.masks(model, &plan).map_err(|e| e.into_core(&name))?;
        let mut report = PassReport { pass: name.clone(), ..PassReport::default() };
        for ((path, _), keep) in plan.iter().zip(masks) {
            let mask = Mask::new(keep);
            let kept = mask.keep().iter().filter(|k| **k).count();
            report.notes.push(format!(
                "{path}: {:.2} % pruned, {kept} of {} weights kept",
                100.0 * mask.sparsity(),
                mask.keep().len()
            ));
            weight_mut(model, path).map_err(|e| e.into_core(&name))?.set_constraint(Box::new(mask));
            report.layers.push(path.clone());
        }
        Ok(report)
    }
}
