//! Low-rank factorisation for deepcompress (family 2 of Cheng et al., IEEE SPM 2018).
//!
//! The survey names three drawbacks of low-rank methods: the decompositions are expensive,
//! they work layer by layer with no global budget, and they need long retraining. This
//! crate answers each: randomized SVD for large weights, one model-wide budget met by
//! dropping the components that cost least per parameter saved, and data-aware
//! factorisation that minimises the error of the layer's *outputs* on calibration data,
//! so that less accuracy is lost before any fine-tuning.
#![deny(missing_docs)]

pub mod conv;
pub mod error;
pub mod factor;
mod pass;
pub mod rank;
pub mod svd;
pub mod whiten;

pub use error::{LowRankError, Result};
pub use pass::{ConvMethod, ConvRanks, DataAware, DecomposeConv, LowRank, Plan, PlanRow, Ranks};
