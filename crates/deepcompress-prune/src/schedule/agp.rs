//! Automated gradual pruning (Zhu and Gupta 2017, arXiv 1710.01878): the sparsity rises
//! along a cubic from `initial` to the target while the model trains, fast at first
//! (while redundant weights abound) and slowly at the end.

use crate::unstructured::{MagnitudePrune, Pattern, Sparsity};
use crate::{PruneError, Result};
use deepcompress_core::data::Dataset;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Optimizer, TrainHistory, Trainer};

/// The cubic sparsity schedule `s(t) = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3`,
/// applied every `every` optimizer steps between `start` and `end`.
///
/// ```
/// use deepcompress_prune::schedule::Agp;
/// let agp = Agp { initial: 0.0, start: 0, end: 100, every: 10 };
/// assert_eq!(agp.fraction(0), 0.0);
/// assert!((agp.fraction(50) - 0.875).abs() < 1e-12);
/// assert_eq!(agp.fraction(100), 1.0);
/// assert_eq!(agp.fraction(200), 1.0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agp {
    /// Sparsity at `start`, as a fraction of each layer's target (0 = dense).
    pub initial: f64,
    /// First optimizer step that prunes.
    pub start: usize,
    /// Step at which the target is reached.
    pub end: usize,
    /// Steps between two pruning updates.
    pub every: usize,
}

impl Agp {
    /// A schedule over `steps` optimizer steps: pruning from the start, reaching the
    /// target after 70 % of them (the rest fine-tunes at the final sparsity), updating
    /// about 40 times.
    pub fn over(steps: usize) -> Self {
        let end = (steps * 7 / 10).max(1);
        Self { initial: 0.0, start: 0, end, every: (end / 40).max(1) }
    }

    fn check(&self) -> Result<()> {
        crate::error::check_sparsity("initial", self.initial)?;
        if self.end <= self.start || self.every == 0 {
            return Err(PruneError::param(
                "AGP schedule",
                format!("start {} end {} every {}", self.start, self.end, self.every),
                "needs start < end and every >= 1",
            ));
        }
        Ok(())
    }

    /// Fraction of the target sparsity in force after `step` steps.
    pub fn fraction(&self, step: usize) -> f64 {
        if step <= self.start {
            return self.initial;
        }
        let p = ((step - self.start) as f64 / (self.end - self.start) as f64).min(1.0);
        1.0 + (self.initial - 1.0) * (1.0 - p).powi(3)
    }

    /// True when the mask is updated after `step` steps.
    pub fn updates_at(&self, step: usize) -> bool {
        step >= self.start && step <= self.end && (step - self.start).is_multiple_of(self.every)
            || step == self.end
    }
}

/// Scales every sparsity of `target` by `f`.
fn scaled(target: &Sparsity, f: f64) -> Sparsity {
    match target {
        Sparsity::Uniform(s) => Sparsity::Uniform(s * f),
        Sparsity::Global(s) => Sparsity::Global(s * f),
        Sparsity::PerLayer(m) => {
            Sparsity::PerLayer(m.iter().map(|(k, v)| (k.clone(), v * f)).collect())
        }
    }
}

/// Magnitude pruning to `target` along an [`Agp`] schedule, driven by the core
/// [`Trainer`] through its step hook.
///
/// ```
/// use deepcompress_core::data::{Mnist, MNIST_MEAN, MNIST_STD};
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::train::{Adam, TrainConfig, Trainer};
/// use deepcompress_prune::schedule::{Agp, GradualPrune};
/// use deepcompress_prune::unstructured::Sparsity;
/// let train = Mnist::embedded().unwrap().train.take(256).normalize(MNIST_MEAN, MNIST_STD).unwrap();
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let trainer = Trainer::new(TrainConfig { epochs: 2, batch_size: 32, ..TrainConfig::default() });
/// let steps = 2 * trainer.steps_per_epoch(train.len());
/// let gp = GradualPrune::new(Selector::all(), Sparsity::Uniform(0.8), Agp::over(steps));
/// gp.fit(&mut model, &trainer, &mut Adam::default(), &train, None).unwrap();
/// let fc1 = model.layer_as::<deepcompress_core::layer::Linear>("fc1").unwrap();
/// assert_eq!(fc1.weight.value().iter().filter(|v| **v == 0.0).count(), 188_160);
/// ```
#[derive(Debug, Clone)]
pub struct GradualPrune {
    selector: Selector,
    target: Sparsity,
    schedule: Agp,
    pattern: Pattern,
}

impl GradualPrune {
    /// Prunes the selected layers to `target` along `schedule`.
    pub fn new(selector: Selector, target: Sparsity, schedule: Agp) -> Self {
        Self { selector, target, schedule, pattern: Pattern::Unstructured }
    }

    /// Sets the pruning pattern (block sparsity grows gradually too).
    pub fn pattern(mut self, pattern: Pattern) -> Self {
        self.pattern = pattern;
        self
    }

    fn pass_at(&self, step: usize) -> MagnitudePrune {
        let f = self.schedule.fraction(step);
        MagnitudePrune::new(self.selector.clone(), scaled(&self.target, f)).pattern(self.pattern)
    }

    /// Trains `model` with `trainer`, pruning along the schedule. The target is checked
    /// before training starts; on error the model is as it was.
    pub fn fit(
        &self,
        model: &mut Model,
        trainer: &Trainer,
        optimizer: &mut dyn Optimizer,
        train: &Dataset,
        val: Option<&Dataset>,
    ) -> Result<TrainHistory> {
        self.schedule.check()?;
        let last = self.pass_at(self.schedule.end);
        last.validate(model).map_err(PruneError::Core)?;
        let backup = model.clone();
        let mut hook = |m: &mut Model, step: usize| -> deepcompress_core::Result<bool> {
            if !self.schedule.updates_at(step) {
                return Ok(false);
            }
            self.pass_at(step).apply(m, &mut PassContext::new(0))?;
            Ok(true)
        };
        let result = trainer.fit_with_hook(model, optimizer, train, val, |_| {}, &mut hook);
        match result {
            Ok(h) => {
                // a run shorter than the schedule still ends at the target
                let steps: usize = h.epochs.len() * trainer.steps_per_epoch(train.len());
                if steps < self.schedule.end {
                    last.apply(model, &mut PassContext::new(0))?;
                }
                Ok(h)
            }
            Err(e) => {
                *model = backup;
                Err(e.into())
            }
        }
    }
}
