//! Structured pruning: removes whole channels (Conv2d filters, Linear neurons) and every
//! channel coupled to them, so the pruned network is smaller and faster with dense kernels.
//!
//! * [`criterion`](Criterion) — L1 / L2 norms (Li et al. 2017, arXiv 1608.08710), FPGM
//!   (He et al. 2019, arXiv 1811.00250), BatchNorm scale with the slimming penalty
//!   (Liu et al. 2017, arXiv 1708.06519);
//! * [`ChannelGroups`] — dependency analysis through BatchNorm, Flatten and residual adds;
//! * [`remove_channels`] and the per-layer helpers — the surgery;
//! * [`StructuredPrune`] — the [`Pass`](deepcompress_core::pass::Pass) with a per-group or
//!   a global MAC target.
//!
//! ```
//! use deepcompress_core::model::Selector;
//! use deepcompress_core::pass::{Pass, PassContext};
//! use deepcompress_prune::structured::{Criterion, StructuredPrune, Target};
//! let mut m = deepcompress_core::models::lenet5(0);
//! let pass = StructuredPrune::new(Selector::kinds(&["Conv2d"]), Criterion::Fpgm, Target::GroupFraction(0.4), &[1, 1, 28, 28]);
//! pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
//! assert_eq!(m.summary(&[1, 1, 28, 28]).unwrap().rows[2].output, vec![1, 30, 8, 8]);
//! ```

mod criterion;
mod groups;
mod pass;
mod surgery;
#[cfg(test)]
mod tests;

pub use criterion::{Criterion, Slimming, bn_scores, slimming_penalty};
pub(crate) use groups::term_macs;
pub use groups::{Blocked, ChannelGroup, ChannelGroups, Member, Role};
pub(crate) use pass::channels_removed;
pub use pass::{PrunePlan, StructuredPrune, Target};
pub use surgery::{
    conv_keep_inputs, conv_keep_outputs, depthwise_keep, linear_keep_inputs, linear_keep_outputs,
    remove_channels,
};
