//! Automatic sensitivity analysis and per-layer sparsity allocation for one global
//! target, instead of hand-set per-layer fractions.
//!
//! * [`SensitivityAnalysis`] — accuracy against unstructured sparsity per layer (or per
//!   declared group), for [`allocate`] with a size budget;
//! * [`StructuredSensitivity`] — accuracy against the fraction of channels removed per
//!   coupled channel group (residual partners are one unit), with MACs as the cost, and
//!   [`StructuredCurves::allocate`] / [`StructuredCurves::pass`] to prune for one global
//!   MAC budget.

mod allocator;
mod analysis;
mod structured;

pub use allocator::{Allocation, Budget, allocate};
pub use analysis::{
    DEFAULT_SPARSITIES, PruneFn, Sensitivity, SensitivityAnalysis, SensitivityCurve,
};
pub use structured::{DEFAULT_CHANNEL_FRACTIONS, StructuredCurves, StructuredSensitivity};
