//! Iterative pruning (Han, Pool, Tran and Dally 2015, arXiv 1506.02626): prune a little,
//! retrain, prune more. Each round keeps a constant fraction of the weights left, so the
//! last rounds, which hurt most, take the smallest steps.

use crate::unstructured::{MagnitudePrune, Pattern, Sparsity};
use crate::{PruneError, Result};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};

/// Magnitude pruning to `target` in `rounds` steps with fine-tuning in between, through
/// the context's fine-tuning routine (a pass without one just prunes in rounds).
///
/// Round `k` of `n` prunes each layer to `1 - (1 - s)^(k/n)` of its weights, where `s`
/// is the layer's target.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::schedule::IterativePrune;
/// use deepcompress_prune::unstructured::Sparsity;
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let mut rounds = 0;
/// let mut tune = |_: &mut deepcompress_core::model::Model| { rounds += 1; Ok(()) };
/// let mut ctx = PassContext::new(0);
/// ctx.fine_tune = Some(&mut tune);
/// IterativePrune::new(Selector::all(), Sparsity::Uniform(0.9), 3).apply(&mut model, &mut ctx).unwrap();
/// drop(ctx);
/// assert_eq!(rounds, 3);
/// ```
#[derive(Debug, Clone)]
pub struct IterativePrune {
    selector: Selector,
    target: Sparsity,
    rounds: usize,
    pattern: Pattern,
}

impl IterativePrune {
    /// Prunes to `target` in `rounds` rounds (at least 1).
    pub fn new(selector: Selector, target: Sparsity, rounds: usize) -> Self {
        Self { selector, target, rounds, pattern: Pattern::Unstructured }
    }

    fn round(&self, k: usize) -> MagnitudePrune {
        let f = |s: f64| 1.0 - (1.0 - s).powf(k as f64 / self.rounds as f64);
        let target = match &self.target {
            Sparsity::Uniform(s) => Sparsity::Uniform(f(*s)),
            Sparsity::Global(s) => Sparsity::Global(f(*s)),
            Sparsity::PerLayer(m) => {
                Sparsity::PerLayer(m.iter().map(|(p, s)| (p.clone(), f(*s))).collect())
            }
        };
        MagnitudePrune::new(self.selector.clone(), target).pattern(self.pattern)
    }

    fn check(&self, model: &Model) -> Result<()> {
        if self.rounds == 0 {
            return Err(PruneError::param("rounds", 0, "at least one round"));
        }
        self.round(self.rounds).validate(model).map_err(PruneError::Core)
    }
}

impl Pass for IterativePrune {
    fn name(&self) -> String {
        format!("iterative-prune-{}-rounds", self.rounds)
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.check(model).map_err(|e| e.into_core(&self.name()))
    }

    fn uses_fine_tune(&self) -> bool {
        true
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        self.check(model).map_err(|e| e.into_core(&self.name()))?;
        let backup = model.clone();
        let mut report = PassReport { pass: self.name(), ..PassReport::default() };
        for k in 1..=self.rounds {
            ctx.report_progress(&format!("{}: round {k}", self.name()));
            let step = self.round(k).apply(model, ctx).and_then(|r| {
                if let Some(tune) = ctx.fine_tune.as_mut() {
                    tune(model)?;
                }
                Ok(r)
            });
            match step {
                Ok(r) if k == self.rounds => {
                    report.layers = r.layers;
                    report.notes = r.notes;
                }
                Ok(_) => {}
                Err(e) => {
                    *model = backup;
                    return Err(e);
                }
            }
        }
        Ok(report)
    }
}
