//! Learning-rate schedules, evaluated per epoch.

use crate::{CoreError, Result};

/// How the learning rate changes over epochs.
///
/// ```
/// use deepcompress_core::train::LrSchedule;
/// let step = LrSchedule::Step { every: 10, gamma: 0.1 };
/// assert_eq!(step.lr(0.1, 0, 30), 0.1);
/// assert!((step.lr(0.1, 10, 30) - 0.01).abs() < 1e-9);
/// let cos = LrSchedule::Cosine { min_lr: 0.0 };
/// assert_eq!(cos.lr(1.0, 0, 10), 1.0);
/// assert!(cos.lr(1.0, 9, 10) < 0.05);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LrSchedule {
    /// The base rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        /// Epochs between decays.
        every: usize,
        /// Decay factor.
        gamma: f32,
    },
    /// Cosine annealing from the base rate to `min_lr` over the run (Loshchilov and
    /// Hutter 2016, arXiv 1608.03983, without restarts).
    Cosine {
        /// Final learning rate.
        min_lr: f32,
    },
}

impl LrSchedule {
    /// Learning rate for `epoch` (0-based) of `epochs`.
    pub fn lr(&self, base: f32, epoch: usize, epochs: usize) -> f32 {
        match *self {
            LrSchedule::Constant => base,
            LrSchedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
            LrSchedule::Cosine { min_lr } => {
                let t = epoch as f32 / epochs.max(1) as f32;
                min_lr + 0.5 * (base - min_lr) * (1.0 + (std::f32::consts::PI * t).cos())
            }
        }
    }

    /// Rejects non-positive step sizes and non-finite factors.
    pub fn check(&self) -> Result<()> {
        match *self {
            LrSchedule::Step { every: 0, .. } => {
                Err(CoreError::param("LrSchedule::Step every", 0, "must be positive"))
            }
            LrSchedule::Step { gamma, .. } if !(gamma > 0.0 && gamma.is_finite()) => {
                Err(CoreError::param("LrSchedule::Step gamma", gamma, "must be finite and > 0"))
            }
            LrSchedule::Cosine { min_lr } if !(min_lr >= 0.0 && min_lr.is_finite()) => Err(
                CoreError::param("LrSchedule::Cosine min_lr", min_lr, "must be finite and >= 0"),
            ),
            _ => Ok(()),
        }
    }
}
