//! Automatic sensitivity analysis and per-layer sparsity allocation for one global
//! target, instead of hand-set per-layer fractions.

mod allocator;
mod analysis;

pub use allocator::{Allocation, Budget, allocate};
pub use analysis::{
    DEFAULT_SPARSITIES, PruneFn, Sensitivity, SensitivityAnalysis, SensitivityCurve,
};
