//! Mini-batch training loop with seeded shuffling, evaluation and early stopping.

use super::shards::Shards;
use super::{Evaluation, LrSchedule, Optimizer, evaluate};
use crate::data::Dataset;
use crate::layer::init;
use crate::model::Model;
use crate::{CoreError, Result};
use rand::seq::SliceRandom;
use serde::Serialize;
use std::time::Instant;

/// Stop when the validation accuracy has not improved by `min_delta` for `patience`
/// epochs, and restore the best weights.
///
/// ```
/// use deepcompress_core::train::{EarlyStopping, TrainConfig};
/// let cfg = TrainConfig { early_stopping: Some(EarlyStopping { patience: 3, min_delta: 0.001 }), ..TrainConfig::default() };
/// assert!(cfg.check().is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// Smallest accuracy gain that counts as improvement.
    pub min_delta: f32,
}

/// Hyper-parameters of a training run.
///
/// ```
/// use deepcompress_core::train::{LrSchedule, TrainConfig};
/// let cfg = TrainConfig { epochs: 5, lr: 3e-4, schedule: LrSchedule::Cosine { min_lr: 0.0 }, ..TrainConfig::default() };
/// assert!(cfg.check().is_ok());
/// assert!(TrainConfig { batch_size: 0, ..cfg }.check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per mini-batch.
    pub batch_size: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Learning-rate schedule over epochs.
    pub schedule: LrSchedule,
    /// Seed of the shuffling order.
    pub seed: u64,
    /// Optional early stopping on the validation set.
    pub early_stopping: Option<EarlyStopping>,
    /// Each batch is split into this many shards processed in parallel by model replicas
    /// (data parallelism; gradients summed in shard order, so the result does not depend
    /// on the thread count). BatchNorm layers then normalise with per-shard statistics
    /// ("ghost batch norm") and keep the mean of the shards' running statistics; use 1
    /// for whole-batch statistics.
    pub shards: usize,
}

impl Default for TrainConfig {
    /// 10 epochs, batch 128, lr 1e-3 (Adam's usual rate), constant, seed 0, 2 shards.
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
            early_stopping: None,
            shards: 2,
        }
    }
}

impl TrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(CoreError::param("epochs", 0, "must be positive"));
        }
        if self.shards == 0 {
            return Err(CoreError::param("shards", 0, "must be positive"));
        }
        if self.batch_size == 0 {
            return Err(CoreError::param("batch_size", 0, "must be positive"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(CoreError::param("lr", self.lr, "must be finite and > 0"));
        }
        self.schedule.check()
    }
}

/// A routine called after every optimizer step (see [`Trainer::fit_with_hook`]).
pub type StepHook<'a> = dyn FnMut(&mut Model, usize) -> Result<bool> + 'a;

/// What happened in one epoch, passed to the progress callback.
///
/// ```
/// use deepcompress_core::{data::Dataset, models::mlp, train::{Adam, TrainConfig, Trainer}};
/// let data = Dataset::new(ndarray::ArrayD::zeros(vec![8, 2]), vec![0; 8]).unwrap();
/// let mut seen = Vec::new();
/// let cfg = TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() };
/// Trainer::new(cfg).fit(&mut mlp(&[2, 2], 0).unwrap(), &mut Adam::default(), &data, None, |e| seen.push(e.epoch)).unwrap();
/// assert_eq!(seen, vec![0, 1]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EpochStats {
    /// 0-based epoch.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f32,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f32,
    /// Validation result, when a validation set was given.
    pub val: Option<Evaluation>,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

/// All epochs of a run.
///
/// ```
/// use deepcompress_core::{data::Dataset, models::mlp, train::{Adam, TrainConfig, Trainer}};
/// let data = Dataset::new(ndarray::ArrayD::zeros(vec![8, 2]), vec![1; 8]).unwrap();
/// let cfg = TrainConfig { epochs: 3, batch_size: 8, ..TrainConfig::default() };
/// let h = Trainer::new(cfg).fit(&mut mlp(&[2, 2], 0).unwrap(), &mut Adam::default(), &data, None, |_| {}).unwrap();
/// assert_eq!(h.epochs.len(), 3);
/// assert!(!h.stopped_early);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainHistory {
    /// One entry per epoch run.
    pub epochs: Vec<EpochStats>,
    /// True when early stopping ended the run.
    pub stopped_early: bool,
}

/// Trains a model with cross-entropy on a [`Dataset`].
///
/// ```
/// use deepcompress_core::{data::Dataset, models::mlp, train::{Adam, TrainConfig, Trainer}};
/// use ndarray::{Array2, ArrayD};
/// // Two separable classes.
/// let x = Array2::from_shape_fn((64, 2), |(i, j)| if (i % 2 == 0) == (j == 0) { 1.0f32 } else { 0.0 });
/// let y = (0..64).map(|i| i % 2).collect();
/// let data = Dataset::new(x.into_dyn(), y).unwrap();
/// let mut model = mlp(&[2, 8, 2], 0).unwrap();
/// let cfg = TrainConfig { epochs: 30, batch_size: 16, lr: 1e-2, ..TrainConfig::default() };
/// let history = Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &data, Some(&data), |_| {}).unwrap();
/// assert_eq!(history.epochs.last().unwrap().val.unwrap().accuracy, 1.0);
/// ```
#[derive(Debug, Clone)]
pub struct Trainer {
    config: TrainConfig,
}

impl Trainer {
    /// A trainer for the given configuration.
    pub fn new(config: TrainConfig) -> Self {
        Self { config }
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains `model` on `train`, evaluating on `val` after each epoch, calling
    /// `progress` with each epoch's statistics. Same seed, same bits.
    pub fn fit(
        &self,
        model: &mut Model,
        optimizer: &mut dyn Optimizer,
        train: &Dataset,
        val: Option<&Dataset>,
        progress: impl FnMut(&EpochStats),
    ) -> Result<TrainHistory> {
        self.fit_with_hook(model, optimizer, train, val, progress, &mut |_, _| Ok(false))
    }

    /// Optimizer steps in one epoch over `n` training samples.
    ///
    /// ```
    /// use deepcompress_core::train::{TrainConfig, Trainer};
    /// let t = Trainer::new(TrainConfig { batch_size: 128, ..TrainConfig::default() });
    /// assert_eq!(t.steps_per_epoch(1000), 8);
    /// ```
    pub fn steps_per_epoch(&self, n: usize) -> usize {
        n.div_ceil(self.config.batch_size.max(1))
    }

    /// [`Trainer::fit`] with a hook called after every optimizer step with the model and
    /// the number of steps taken so far. Gradual pruning uses it to raise the sparsity
    /// during training; the hook returns `true` when it changed parameters' constraints
    /// or shapes, so that the data-parallel replicas are rebuilt from the model.
    ///
    /// ```
    /// use deepcompress_core::data::Dataset;
    /// use deepcompress_core::train::{Sgd, TrainConfig, Trainer};
    /// use ndarray::ArrayD;
    /// let data = Dataset::new(ArrayD::zeros(ndarray::IxDyn(&[8, 784])), vec![0; 8]).unwrap();
    /// let mut model = deepcompress_core::models::lenet_300_100(0);
    /// let trainer = Trainer::new(TrainConfig { epochs: 2, batch_size: 4, ..TrainConfig::default() });
    /// let mut seen = Vec::new();
    /// trainer.fit_with_hook(&mut model, &mut Sgd::new(0.0).unwrap(), &data, None, |_| {},
    ///     &mut |_, step| { seen.push(step); Ok(false) }).unwrap();
    /// assert_eq!(seen, vec![1, 2, 3, 4]);
    /// ```
    pub fn fit_with_hook(
        &self,
        model: &mut Model,
        optimizer: &mut dyn Optimizer,
        train: &Dataset,
        val: Option<&Dataset>,
        mut progress: impl FnMut(&EpochStats),
        hook: &mut StepHook<'_>,
    ) -> Result<TrainHistory> {
        let cfg = &self.config;
        cfg.check()?;
        if train.is_empty() {
            return Err(CoreError::param("training set", 0, "is empty"));
        }
        if cfg.early_stopping.is_some() && val.is_none() {
            return Err(CoreError::param("early_stopping", "set", "needs a validation set"));
        }
        let mut rng = init::rng(cfg.seed);
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut history = TrainHistory::default();
        let mut best: Option<(f32, Model)> = None;
        let mut since_best = 0;
        let mut shards = Shards::new(model, cfg.shards, cfg.seed);
        let mut step = 0usize;
        for epoch in 0..cfg.epochs {
            let start = Instant::now();
            let lr = cfg.schedule.lr(cfg.lr, epoch, cfg.epochs);
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            let batches = order.chunks(cfg.batch_size);
            let n_batches = batches.len();
            for chunk in batches {
                let loss = shards.forward_backward(model, train, chunk)?;
                optimizer.step(model, lr);
                step += 1;
                if hook(model, step)? {
                    shards = Shards::new(model, cfg.shards, cfg.seed ^ step as u64);
                } else {
                    shards.sync(model);
                }
                loss_sum += loss as f64;
            }
            let val_eval = val.map(|v| evaluate(model, v, 512)).transpose()?;
            let stats = EpochStats {
                epoch,
                lr,
                train_loss: (loss_sum / n_batches as f64) as f32,
                val: val_eval,
                seconds: start.elapsed().as_secs_f64(),
            };
            progress(&stats);
            history.epochs.push(stats);
            if let (Some(es), Some(e)) = (cfg.early_stopping, val_eval) {
                if best.as_ref().is_none_or(|(acc, _)| e.accuracy > acc + es.min_delta) {
                    best = Some((e.accuracy, model.clone()));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if since_best >= es.patience {
                        history.stopped_early = true;
                        break;
                    }
                }
            }
        }
        if let Some((_, m)) = best {
            *model = m;
        }
        Ok(history)
    }
}
