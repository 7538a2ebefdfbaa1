//! Losses, optimizers, learning-rate schedules and the trainer.

mod loss;
mod metrics;
mod optim;
mod schedule;
mod shards;
mod trainer;

pub use loss::{cross_entropy, mse};
pub use metrics::{Evaluation, evaluate};
pub use optim::{Adam, Optimizer, Sgd};
pub use schedule::LrSchedule;
pub use trainer::{EarlyStopping, EpochStats, StepHook, TrainConfig, TrainHistory, Trainer};
