//! Structured sensitivity: one accuracy curve per coupled channel group, measured in
//! channels removed, and an allocation of per-group fractions for one global MAC target.
//!
//! Unstructured curves treat each layer alone. For channel pruning that is wrong: the
//! stem of a residual network and every block body that adds into its stream must lose
//! the same channels, so they are one unit with one curve. The units here are the
//! prunable groups of [`ChannelGroups::analyze`], and the cost the allocator trades
//! against accuracy is multiply-accumulates, not weights.

use super::{Allocation, Budget, Sensitivity, SensitivityCurve, allocate};
use crate::error::check_sparsity;
use crate::structured::{
    ChannelGroups, Criterion, StructuredPrune, Target, channels_removed, remove_channels, term_macs,
};
use crate::{PruneError, Result};
use deepcompress_core::data::Dataset;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::train::evaluate;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// The default grid of channel fractions for [`StructuredSensitivity`]: eighths, so that
/// groups of 8, 16, 32 or 64 channels get every point exactly.
pub const DEFAULT_CHANNEL_FRACTIONS: [f64; 8] = [0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875];

/// Batch size of the validation passes.
const EVAL_BATCH: usize = 500;

/// Structured sensitivity analysis settings: for every prunable channel group whose
/// producers the selector picks, the validation accuracy of the model with only that
/// group's lowest-ranked channels removed (by a [`Criterion`]), at several fractions.
///
/// This is the per-layer sensitivity of Li et al. 2017 ("Pruning filters for efficient
/// ConvNets", arXiv 1608.08710, section 4.2), measured per coupled group as residual
/// networks require, with the fractions then chosen by the knapsack allocator of
/// [`allocate`] for a MAC budget instead of by hand. Use it before [`StructuredPrune`]
/// when a uniform [`Target::GroupFraction`] or a greedy [`Target::MacFraction`] costs too
/// much accuracy; fine-tune afterwards.
///
/// ```
/// use deepcompress_core::data::{Mnist, MNIST_MEAN, MNIST_STD};
/// use deepcompress_core::model::Selector;
/// use deepcompress_prune::sensitivity::StructuredSensitivity;
/// use deepcompress_prune::structured::Criterion;
/// let val = Mnist::embedded().unwrap().test.take(100).normalize(MNIST_MEAN, MNIST_STD).unwrap();
/// let model = deepcompress_core::models::resnet_small(0);
/// let curves = StructuredSensitivity::new(Selector::kinds(&["Conv2d"]), Criterion::L1, &[1, 1, 28, 28])
///     .fractions(vec![0.0, 0.5])
///     .run(&model, &val)
///     .unwrap();
/// // Six prunable groups; the stem and layer1's body output share one curve.
/// assert_eq!(curves.sensitivity.curves.len(), 6);
/// assert_eq!(curves.sensitivity.curves[0].layers, ["conv1", "layer1.block.body.conv2"]);
/// assert_eq!(curves.sensitivity.curves[0].points[1].0, 0.5); // 8 of 16 channels
/// ```
#[derive(Debug, Clone)]
pub struct StructuredSensitivity {
    selector: Selector,
    criterion: Criterion,
    input_shape: Vec<usize>,
    fractions: Vec<f64>,
    min_channels: usize,
}

impl StructuredSensitivity {
    /// Curves for the prunable groups with a producer (Conv2d or Linear) picked by
    /// `selector`, channels ranked by `criterion`, MACs counted for an input of shape
    /// `input_shape` (batch first), on [`DEFAULT_CHANNEL_FRACTIONS`], keeping at least one
    /// channel per group.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::StructuredSensitivity;
    /// use deepcompress_prune::structured::Criterion;
    /// let s = StructuredSensitivity::new(Selector::all(), Criterion::Fpgm, &[1, 1, 28, 28]);
    /// assert!(format!("{s:?}").contains("Fpgm"));
    /// ```
    pub fn new(selector: Selector, criterion: Criterion, input_shape: &[usize]) -> Self {
        Self {
            selector,
            criterion,
            input_shape: input_shape.to_vec(),
            fractions: DEFAULT_CHANNEL_FRACTIONS.to_vec(),
            min_channels: 1,
        }
    }

    /// The fractions of each group's channels to try, increasing, each in `[0, 1)`. Each
    /// is rounded down to whole channels (`k` of `width`); fractions that round to a `k`
    /// already tried are skipped, and the unpruned point (`k = 0`) is always measured.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::StructuredSensitivity;
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::resnet_small(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(10);
    /// let s = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 1, 28, 28]);
    /// assert!(s.clone().fractions(vec![0.5, 0.25]).run(&m, &val).is_err()); // not increasing
    /// assert!(s.fractions(vec![1.0]).run(&m, &val).is_err()); // would empty the groups
    /// ```
    pub fn fractions(mut self, fractions: Vec<f64>) -> Self {
        self.fractions = fractions;
        self
    }

    /// Keeps at least `n` channels in every group (default 1; 0 is refused by
    /// [`run`](Self::run)); points that would go below are capped there.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::StructuredSensitivity;
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::lenet5(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(20);
    /// let c = StructuredSensitivity::new(Selector::path("conv1"), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0, 0.9]).min_channels(15).run(&m, &val).unwrap();
    /// assert_eq!(c.sensitivity.curves[0].points[1].0, 0.25); // 5 of conv1's 20 filters
    /// ```
    pub fn min_channels(mut self, n: usize) -> Self {
        self.min_channels = n;
        self
    }

    /// A pass for this analysis's selector, criterion and input shape.
    fn pass(&self, target: Target) -> StructuredPrune {
        StructuredPrune::new(self.selector.clone(), self.criterion, target, &self.input_shape)
            .min_channels(self.min_channels)
    }

    fn check(&self) -> Result<()> {
        if self.fractions.is_empty() {
            return Err(PruneError::param("channel fractions", "[]", "need at least one"));
        }
        for (i, &f) in self.fractions.iter().enumerate() {
            check_sparsity("channel fraction", f)?;
            if i > 0 && f <= self.fractions[i - 1] {
                return Err(PruneError::param("channel fractions", f, "must be increasing"));
            }
        }
        if self.min_channels == 0 {
            return Err(PruneError::param("min_channels", 0, "at least one channel must remain"));
        }
        Ok(())
    }

    /// Measures the curves on `val`. The model is not changed (each point prunes a copy).
    ///
    /// In the returned [`StructuredCurves::sensitivity`], each curve is one group: its
    /// `layers` are the group's producers in model order, its points' sparsities are the
    /// exact fractions `k / width` of channels removed, and its `weights` field holds the
    /// group's **share of the analysed MACs** (see [`StructuredCurves`]), so that the
    /// allocator's budgets count multiply-accumulates. Errors on bad settings, on an
    /// input shape that does not flow through the model, when the selector picks no
    /// prunable group, or when a selected group is coupled to a layer the channel
    /// analysis cannot prune.
    ///
    /// ```
    /// use deepcompress_core::data::Mnist;
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::StructuredSensitivity;
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::lenet5(0);
    /// let val = Mnist::embedded().unwrap().test.take(20);
    /// let s = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 1, 28, 28]);
    /// let c = s.clone().fractions(vec![0.0, 0.5]).run(&m, &val).unwrap();
    /// // conv1, conv2 and fc1 (fc2 writes the logits and cannot lose channels)
    /// assert_eq!(c.sensitivity.curves.len(), 3);
    /// assert!(s.run(&m, &Mnist::embedded().unwrap().test.take(0)).is_err()); // no data
    /// ```
    pub fn run(&self, model: &Model, val: &Dataset) -> Result<StructuredCurves> {
        self.check()?;
        if val.is_empty() {
            return Err(PruneError::param("validation set", "0 samples", "needs data"));
        }
        // Which groups the selector makes prunable, with the pass's own checks.
        let plan = self.pass(Target::GroupFraction(0.0)).plan(model)?;
        let groups = plan.groups;
        let analysed: Vec<usize> =
            (0..groups.groups().len()).filter(|&g| plan.keep[g].is_some()).collect();
        let shares = mac_shares(&groups, &analysed);
        let mut base = model.clone();
        let baseline = evaluate(&mut base, val, EVAL_BATCH)?.accuracy;
        let mut curves = Vec::with_capacity(analysed.len());
        for (&g, &share) in analysed.iter().zip(&shares) {
            let group = &groups.groups()[g];
            let width = group.channels;
            let removable = width.saturating_sub(self.min_channels);
            let producers: Vec<String> = group.producers().map(str::to_string).collect();
            let mut points = vec![(0.0, baseline)];
            let mut done = 0;
            for &f in &self.fractions {
                let k = channels_removed(f, width, removable);
                if k <= done {
                    continue;
                }
                done = k;
                let fraction = k as f64 / width as f64;
                let mut m = model.clone();
                let target = Target::PerGroup([(producers[0].clone(), fraction)].into());
                let one = StructuredPrune::new(
                    Selector::path(&producers[0]),
                    self.criterion,
                    target,
                    &self.input_shape,
                )
                .min_channels(self.min_channels)
                .plan(&m)?;
                remove_channels(&mut m, &one.groups, &one.keep)?;
                points.push((fraction, evaluate(&mut m, val, EVAL_BATCH)?.accuracy));
            }
            curves.push(SensitivityCurve { layers: producers, weights: share as usize, points });
        }
        let total_macs = groups.macs(&groups.widths());
        Ok(StructuredCurves {
            sensitivity: Sensitivity { baseline, curves },
            channels: analysed.iter().map(|&g| groups.groups()[g].channels).collect(),
            analysed_macs: shares.iter().sum(),
            total_macs,
            notes: plan.notes,
            settings: self.clone(),
            groups,
            analysed,
        })
    }
}

/// Each analysed group's share of the MACs that depend on analysed groups: every cost
/// term (one layer's MACs as a product of group widths) is split equally among its
/// factors that are analysed groups, the remainder of the integer division going to the
/// first.
fn mac_shares(groups: &ChannelGroups, analysed: &[usize]) -> Vec<u64> {
    let widths = groups.widths();
    let mut shares = vec![0u64; analysed.len()];
    for t in groups.terms() {
        let factors: Vec<usize> =
            t.groups.iter().filter_map(|g| analysed.iter().position(|a| a == g)).collect();
        if factors.is_empty() {
            continue;
        }
        let macs = term_macs(t, &widths);
        let n = factors.len() as u64;
        for (i, &j) in factors.iter().enumerate() {
            shares[j] += macs / n + if i == 0 { macs % n } else { 0 };
        }
    }
    shares
}

/// The result of a [`StructuredSensitivity`] run: one curve per channel group, and what
/// is needed to turn an [`Allocation`] of per-group fractions into a pruning.
///
/// **MACs as the allocator's cost.** Each curve's `weights` field is the group's share
/// of the *analysed MACs*: the multiply-accumulates (for the analysis's input shape) of
/// every layer whose cost depends on the width of an analysed group. A layer between two
/// analysed groups (a convolution reading one and writing the other) is split half and
/// half. The shares sum to [`analysed_macs`](Self::analysed_macs), so with the plain
/// [`allocate`], `Budget::KeepFraction(0.5)` keeps at most half of the analysed MACs —
/// at most, because removing a fraction `a` of a layer's inputs and `b` of its outputs
/// keeps `(1-a)(1-b)` of its MACs, never more than the allocator's linear estimate
/// `((1-a)+(1-b))/2`. [`StructuredCurves::allocate`] corrects for this with the exact
/// MAC model, so that the budget is met closely and not overshot.
///
/// ```
/// use deepcompress_core::data::{Mnist, MNIST_MEAN, MNIST_STD};
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::sensitivity::{Budget, StructuredSensitivity};
/// use deepcompress_prune::structured::Criterion;
/// let val = Mnist::embedded().unwrap().test.take(100).normalize(MNIST_MEAN, MNIST_STD).unwrap();
/// let mut model = deepcompress_core::models::resnet_small(0);
/// let curves = StructuredSensitivity::new(Selector::kinds(&["Conv2d"]), Criterion::L1, &[1, 1, 28, 28])
///     .fractions(vec![0.0, 0.25, 0.5, 0.75])
///     .run(&model, &val)
///     .unwrap();
/// let shares: u64 = curves.sensitivity.curves.iter().map(|c| c.weights as u64).sum();
/// assert_eq!(shares, curves.analysed_macs);
/// let alloc = curves.allocate(Budget::KeepFraction(0.5)).unwrap();
/// assert!(alloc.kept_fraction <= 0.5);
/// let predicted = curves.macs_after(&alloc).unwrap();
/// curves.pass(&alloc).apply(&mut model, &mut PassContext::new(0)).unwrap();
/// assert_eq!(model.summary(&[1, 1, 28, 28]).unwrap().total().macs, predicted);
/// ```
#[derive(Debug, Clone)]
pub struct StructuredCurves {
    /// The dense accuracy and one curve per analysed group, in model order.
    pub sensitivity: Sensitivity,
    /// Channels of each curve's group before pruning.
    pub channels: Vec<usize>,
    /// MACs of the layers whose cost depends on an analysed group (the sum of the curves'
    /// `weights`), for the analysis's input shape.
    pub analysed_macs: u64,
    /// MACs of the whole model for the analysis's input shape.
    pub total_macs: u64,
    /// Groups picked by the selector but skipped, and why (model input or output,
    /// channel-mixing layers).
    pub notes: Vec<String>,
    settings: StructuredSensitivity,
    groups: ChannelGroups,
    analysed: Vec<usize>,
}

/// A serialisable summary of [`StructuredCurves`] for reports.
#[derive(Serialize)]
struct Summary<'a> {
    sensitivity: &'a Sensitivity,
    channels: &'a [usize],
    analysed_macs: u64,
    total_macs: u64,
}

impl StructuredCurves {
    /// Channel widths of every group of the model after pruning as `alloc` says. Errors
    /// when `alloc` names a layer that is not a producer of an analysed group, or gives
    /// one group two fractions.
    fn widths_after(&self, alloc: &Allocation) -> Result<Vec<usize>> {
        let mut widths = self.groups.widths();
        let mut seen: Vec<Option<f64>> = vec![None; widths.len()];
        for (path, &f) in &alloc.sparsity {
            check_sparsity(&format!("channel fraction of `{path}`"), f)?;
            let g = self.groups.index_of(path).filter(|g| self.analysed.contains(g)).ok_or_else(
                || {
                    PruneError::param(
                        "allocation",
                        format!("`{path}`"),
                        "is not a producer of a group of this analysis",
                    )
                },
            )?;
            if seen[g].is_some_and(|o| o != f) {
                return Err(PruneError::param(
                    "allocation",
                    format!("`{path}` = {f}"),
                    "another producer of the same group has a different fraction",
                ));
            }
            seen[g] = Some(f);
        }
        for (g, f) in seen.iter().enumerate() {
            if let Some(f) = f {
                let w = widths[g];
                widths[g] -= channels_removed(*f, w, w.saturating_sub(self.settings.min_channels));
            }
        }
        Ok(widths)
    }

    /// MACs of the whole model (for the analysis's input shape) after pruning as `alloc`
    /// says — exactly what [`pass`](Self::pass) will leave. Errors as
    /// [`allocate`](Self::allocate)'s allocations never do: on a path that is not a
    /// producer of an analysed group, or a fraction outside `[0, 1)`.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::{Allocation, StructuredSensitivity};
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::lenet5(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(10);
    /// let c = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0]).run(&m, &val).unwrap();
    /// let none = Allocation { sparsity: Default::default(), kept_fraction: 1.0, predicted_drop: 0.0 };
    /// assert_eq!(c.macs_after(&none).unwrap(), c.total_macs);
    /// let bad = Allocation { sparsity: [("fc2".to_string(), 0.5)].into(), ..none };
    /// assert!(c.macs_after(&bad).is_err()); // fc2 writes the logits
    /// ```
    pub fn macs_after(&self, alloc: &Allocation) -> Result<u64> {
        Ok(self.groups.macs(&self.widths_after(alloc)?))
    }

    /// Chooses one point per group for `budget`, with the MACs counted exactly.
    ///
    /// `Budget::KeepFraction(f)` keeps at most `f` of the [analysed
    /// MACs](Self::analysed_macs) (the rest of the model is not prunable here). The
    /// knapsack of [`allocate`] prices a group's MACs linearly, which overestimates what
    /// remains when both sides of a convolution lose channels; this method therefore
    /// searches the largest budget handed to [`allocate`] whose allocation, with the
    /// exact MAC model, still keeps at most `f`. `Budget::MaxDrop` is passed through.
    /// In the returned [`Allocation`], `sparsity` maps every producer of every group to
    /// the group's channel fraction and `kept_fraction` is the exact fraction of the
    /// analysed MACs kept. Errors when `f` is not in `(0, 1]` or cannot be reached with
    /// the measured points.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::{Budget, StructuredSensitivity};
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::resnet_small(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(20);
    /// let c = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0, 0.5]).run(&m, &val).unwrap();
    /// let a = c.allocate(Budget::KeepFraction(0.6)).unwrap();
    /// assert!(a.kept_fraction <= 0.6);
    /// assert!(c.allocate(Budget::KeepFraction(0.01)).is_err()); // halving every group keeps 25 %
    /// ```
    pub fn allocate(&self, budget: Budget) -> Result<Allocation> {
        let exact = |a: Allocation| -> Result<(Allocation, f64)> {
            let after = self.macs_after(&a)?;
            let kept = self.analysed_macs as f64 - (self.total_macs - after) as f64;
            let fraction = kept / self.analysed_macs.max(1) as f64;
            Ok((Allocation { kept_fraction: fraction, ..a }, fraction))
        };
        let Budget::KeepFraction(f) = budget else {
            return exact(allocate(&self.sensitivity, budget, &BTreeMap::new())?).map(|r| r.0);
        };
        // The linear estimate is an upper bound on what is kept, so `f` itself is met.
        let (mut best, kept) = exact(allocate(&self.sensitivity, budget, &BTreeMap::new())?)?;
        if kept > f + 1e-12 {
            return Err(PruneError::param(
                "KeepFraction",
                f,
                format!("the allocation keeps {kept}: the curves' MAC shares are inconsistent"),
            ));
        }
        let (mut lo, mut hi) = (f, 1.0f64);
        for _ in 0..40 {
            let mid = 0.5 * (lo + hi);
            let (a, kept) =
                exact(allocate(&self.sensitivity, Budget::KeepFraction(mid), &BTreeMap::new())?)?;
            if kept <= f + 1e-12 {
                lo = mid;
                if a.predicted_drop < best.predicted_drop
                    || (a.predicted_drop == best.predicted_drop
                        && a.kept_fraction > best.kept_fraction)
                {
                    best = a;
                }
            } else {
                hi = mid;
            }
        }
        Ok(best)
    }

    /// The structured pruning `alloc` describes: a [`StructuredPrune`] with the analysis's
    /// selector, criterion, input shape and `min_channels`, and a [`Target::PerGroup`]
    /// with the allocation's fractions. It removes the same channels the curves removed
    /// (the ranking depends only on the group), all groups at once.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_core::pass::{Pass, PassContext};
    /// use deepcompress_prune::sensitivity::{Allocation, StructuredSensitivity};
    /// use deepcompress_prune::structured::Criterion;
    /// let mut m = deepcompress_core::models::lenet5(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(10);
    /// let c = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0]).run(&m, &val).unwrap();
    /// let a = Allocation { sparsity: [("conv2".to_string(), 0.5)].into(), kept_fraction: 0.0, predicted_drop: 0.0 };
    /// c.pass(&a).apply(&mut m, &mut PassContext::new(0)).unwrap();
    /// assert_eq!(m.summary(&[1, 1, 28, 28]).unwrap().total().macs, c.macs_after(&a).unwrap());
    /// ```
    pub fn pass(&self, alloc: &Allocation) -> StructuredPrune {
        self.settings.pass(self.target(alloc))
    }

    /// The allocation as a [`Target::PerGroup`] (the allocation's fractions, keyed by the
    /// groups' producer paths).
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::{Allocation, StructuredSensitivity};
    /// use deepcompress_prune::structured::{Criterion, Target};
    /// let m = deepcompress_core::models::lenet5(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(10);
    /// let c = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0]).run(&m, &val).unwrap();
    /// let a = Allocation { sparsity: [("conv1".to_string(), 0.25)].into(), kept_fraction: 0.0, predicted_drop: 0.0 };
    /// assert_eq!(c.target(&a), Target::PerGroup(a.sparsity.clone()));
    /// ```
    pub fn target(&self, alloc: &Allocation) -> Target {
        Target::PerGroup(alloc.sparsity.clone())
    }

    /// A Markdown table: one row per group (producers, channels, MAC share), then the
    /// accuracy (%) at each number of channels removed.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::StructuredSensitivity;
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::lenet5(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(10);
    /// let c = StructuredSensitivity::new(Selector::path("conv1"), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0, 0.5]).run(&m, &val).unwrap();
    /// assert!(c.to_markdown().contains("| conv1 | 20 |"));
    /// assert!(c.to_markdown().contains("10 removed:"));
    /// ```
    pub fn to_markdown(&self) -> String {
        let mut out = format!(
            "baseline accuracy {:.2} %; analysed MACs {} of {}\n\n\
             | group (producers) | channels | MAC share | accuracy (%) by channels removed |\n\
             |---|---:|---:|---|",
            100.0 * self.sensitivity.baseline,
            self.analysed_macs,
            self.total_macs
        );
        for (c, &w) in self.sensitivity.curves.iter().zip(&self.channels) {
            let _ = write!(out, "\n| {} | {w} | {} |", c.layers.join(" + "), c.weights);
            let cells: Vec<String> = c
                .points
                .iter()
                .map(|&(s, a)| format!("{} removed: {:.2}", (s * w as f64).round(), 100.0 * a))
                .collect();
            let _ = write!(out, " {} |", cells.join(", "));
        }
        out.push('\n');
        out
    }

    /// The curves and MAC totals as JSON.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_prune::sensitivity::StructuredSensitivity;
    /// use deepcompress_prune::structured::Criterion;
    /// let m = deepcompress_core::models::lenet5(0);
    /// let val = deepcompress_core::data::Mnist::embedded().unwrap().test.take(10);
    /// let c = StructuredSensitivity::new(Selector::path("conv2"), Criterion::L1, &[1, 1, 28, 28])
    ///     .fractions(vec![0.0]).run(&m, &val).unwrap();
    /// assert!(c.to_json().contains("\"analysed_macs\""));
    /// ```
    pub fn to_json(&self) -> String {
        let s = Summary {
            sensitivity: &self.sensitivity,
            channels: &self.channels,
            analysed_macs: self.analysed_macs,
            total_macs: self.total_macs,
        };
        serde_json::to_string(&s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepcompress_core::data::{MNIST_MEAN, MNIST_STD, Mnist};

    const MNIST: [usize; 4] = [1, 1, 28, 28];

    fn val(n: usize) -> Dataset {
        Mnist::embedded().unwrap().test.take(n).normalize(MNIST_MEAN, MNIST_STD).unwrap()
    }

    #[test]
    fn bad_settings_are_refused() {
        let m = deepcompress_core::models::lenet5(0);
        let v = val(10);
        let s = || StructuredSensitivity::new(Selector::all(), Criterion::L1, &MNIST);
        assert!(s().fractions(vec![]).run(&m, &v).is_err());
        assert!(s().fractions(vec![0.0, 0.0]).run(&m, &v).is_err());
        assert!(s().fractions(vec![-0.1]).run(&m, &v).is_err());
        assert!(s().min_channels(0).run(&m, &v).is_err());
        let e = StructuredSensitivity::new(Selector::all(), Criterion::L1, &[1, 3, 28, 28])
            .run(&m, &v)
            .unwrap_err();
        assert!(e.to_string().contains("conv1"), "{e}");
        assert!(
            StructuredSensitivity::new(Selector::path("nope"), Criterion::L1, &MNIST)
                .run(&m, &v)
                .is_err()
        );
        // LeNet-5 has no BatchNorm to score channels with.
        let e = StructuredSensitivity::new(Selector::all(), Criterion::BnScale, &MNIST)
            .fractions(vec![0.0, 0.5])
            .run(&m, &v)
            .unwrap_err();
        assert!(matches!(e, PruneError::Unsupported { .. }), "{e}");
    }

    #[test]
    fn small_groups_skip_repeated_points() {
        let m = deepcompress_core::models::lenet5(0);
        // conv1 has 20 filters: 0.01 rounds to no channel, 0.05 and 0.06 both to one.
        let c = StructuredSensitivity::new(Selector::path("conv1"), Criterion::L1, &MNIST)
            .fractions(vec![0.01, 0.05, 0.06, 0.5])
            .run(&m, &val(20))
            .unwrap();
        let xs: Vec<f64> = c.sensitivity.curves[0].points.iter().map(|p| p.0).collect();
        assert_eq!(xs, vec![0.0, 0.05, 0.5]);
    }

    #[test]
    fn exact_allocation_never_exceeds_the_budget() {
        let m = deepcompress_core::models::resnet_small(1);
        let c = StructuredSensitivity::new(Selector::kinds(&["Conv2d"]), Criterion::Fpgm, &MNIST)
            .fractions(vec![0.0, 0.25, 0.5, 0.75])
            .run(&m, &val(40))
            .unwrap();
        for f in [0.3, 0.5, 0.7, 0.9, 1.0] {
            let a = c.allocate(Budget::KeepFraction(f)).unwrap();
            let after = c.macs_after(&a).unwrap();
            let kept = c.analysed_macs - (c.total_macs - after);
            assert!(kept as f64 <= f * c.analysed_macs as f64 + 1e-6, "{f}: {kept}");
            assert!((a.kept_fraction - kept as f64 / c.analysed_macs as f64).abs() < 1e-12);
            // The plain allocator's linear estimate is never below the exact count.
            let plain = allocate(&c.sensitivity, Budget::KeepFraction(f), &BTreeMap::new());
            let plain = plain.unwrap();
            let exact = c.macs_after(&plain).unwrap();
            assert!(
                (c.analysed_macs - (c.total_macs - exact)) as f64
                    <= plain.kept_fraction * c.analysed_macs as f64 + 1e-6
            );
        }
        let a = c.allocate(Budget::MaxDrop(0.0)).unwrap();
        assert_eq!(a.predicted_drop, 0.0);
        assert!(c.allocate(Budget::KeepFraction(0.0)).is_err());
        assert!(c.allocate(Budget::KeepFraction(1.5)).is_err());
        assert!(c.allocate(Budget::MaxDrop(f32::NAN)).is_err());
    }
}
