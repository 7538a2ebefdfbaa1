//! The pipeline passes: [`LowRank`] (SVD of Linear and Conv2d weights, per-layer or global
//! ranks, optionally data-aware) and [`DecomposeConv`] (separable, Tucker-2 or CP
//! convolutions).

mod decompose_conv;
mod low_rank;

pub use decompose_conv::{ConvMethod, ConvRanks, DecomposeConv};
pub use low_rank::{DataAware, LowRank, Plan, PlanRow, Ranks};
