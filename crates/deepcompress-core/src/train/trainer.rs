//! Mini-batch training loop with seeded shuffling, evaluation and early stopping.

use super::{Evaluation, LrSchedule, Optimizer, cross_entropy, evaluate};
use crate::data::Dataset;
use crate::layer::{Mode, init};
use crate::model::Model;
use crate::{CoreError, Result};
use rand::seq::SliceRandom;
use serde::Serialize;
use std::time::Instant;

/// Stop when the validation accuracy has not improved by `min_delta` for `patience`
/// epochs, and restore the best weights.
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
}

impl Default for TrainConfig {
    /// 10 epochs, batch 128, lr 1e-3 (Adam's usual rate), constant, seed 0.
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 128,
            lr: 1e-3,
            schedule: LrSchedule::Constant,
            seed: 0,
            early_stopping: None,
        }
    }
}

impl TrainConfig {
    /// Validates every field.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(CoreError::param("epochs", 0, "must be positive"));
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

/// What happened in one epoch, passed to the progress callback.
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
        mut progress: impl FnMut(&EpochStats),
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
        for epoch in 0..cfg.epochs {
            let start = Instant::now();
            let lr = cfg.schedule.lr(cfg.lr, epoch, cfg.epochs);
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            let batches = order.chunks(cfg.batch_size);
            let n_batches = batches.len();
            for chunk in batches {
                let (x, y) = train.batch(chunk);
                model.zero_grad();
                let logits = model.forward(x, Mode::Train)?;
                let (loss, grad) = cross_entropy(&logits, &y)?;
                model.backward(grad)?;
                optimizer.step(model, lr);
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
