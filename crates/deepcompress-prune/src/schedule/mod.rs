//! Pruning schedules: one-shot ([`MagnitudePrune`](crate::unstructured::MagnitudePrune)
//! alone), iterative prune-retrain, and gradual (AGP) pruning during training.

mod agp;
mod iterative;

pub use agp::{Agp, GradualPrune};
pub use iterative::IterativePrune;
