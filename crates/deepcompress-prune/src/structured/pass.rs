//! The [`StructuredPrune`] pass: scores coupled channel groups, chooses what to remove for
//! a per-group or a global MAC target, and removes it.

use super::criterion::{Criterion, bn_scores};
use super::groups::{Blocked, ChannelGroups, Role, term_macs};
use super::surgery::remove_channels;
use crate::error::{PruneError, Result, check_sparsity};
use deepcompress_core::layer::BatchNorm;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use serde::Serialize;
use std::collections::BTreeMap;

/// Default of [`StructuredPrune::max_fraction`].
const DEFAULT_MAX_FRACTION: f64 = 0.5;

/// How much to remove.
///
/// ```
/// use deepcompress_prune::structured::Target;
/// assert!(Target::GroupFraction(0.5).check().is_ok());
/// assert!(Target::MacFraction(1.0).check().is_err());
/// let per_group = Target::PerGroup([("conv2".to_string(), 0.25)].into());
/// assert!(per_group.check().is_ok());
/// assert!(Target::PerGroup([("conv2".to_string(), f64::NAN)].into()).check().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Target {
    /// Remove this fraction (in `[0, 1)`, rounded down) of the channels of every selected
    /// group — the uniform per-layer ratio of Li et al. 2017 (arXiv 1608.08710) and
    /// He et al. 2019 (arXiv 1811.00250).
    GroupFraction(f64),
    /// Remove at least this fraction (in `[0, 1)`) of the whole model's multiply-accumulates
    /// for the analysed input: channels are removed one by one across all selected groups,
    /// each time the one with the lowest score per MAC saved, until the target is met (a
    /// global, cost-aware ranking in the spirit of Molchanov et al. 2017, arXiv 1611.06440,
    /// and network slimming's global threshold, arXiv 1708.06519).
    MacFraction(f64),
    /// Remove this fraction (in `[0, 1)`) of the channels of each listed group, rounded
    /// down; a group is named by the path of any of its producers (listing several
    /// producers of one group is allowed when they agree). Groups not listed are left
    /// alone; a name that is not a producer of a selected, prunable group is refused.
    /// The per-group choice of a sensitivity allocation
    /// ([`StructuredCurves::target`](crate::sensitivity::StructuredCurves::target)). A
    /// fraction `k / width`, as the structured sensitivity curves record, removes exactly
    /// `k` channels.
    PerGroup(BTreeMap<String, f64>),
}

impl Target {
    /// Checks that the fraction is finite and in `[0, 1)`.
    pub fn check(&self) -> Result<()> {
        let (name, f) = match self {
            // Removing a fraction of the channels is a (structured) sparsity.
            Target::GroupFraction(f) => return check_sparsity("channel fraction", *f),
            Target::MacFraction(f) => ("MAC fraction", *f),
            Target::PerGroup(map) => {
                for (path, &f) in map {
                    check_sparsity(&format!("channel fraction of `{path}`"), f)?;
                }
                return Ok(());
            }
        };
        if f.is_finite() && (0.0..1.0).contains(&f) {
            Ok(())
        } else {
            Err(PruneError::param(name, f, "must be in [0, 1)"))
        }
    }
}

/// What [`StructuredPrune::plan`] decided, before any change to the model.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_prune::structured::{Criterion, StructuredPrune, Target};
/// let m = deepcompress_core::models::lenet5(0);
/// let pass = StructuredPrune::new(Selector::kinds(&["Conv2d"]), Criterion::L1, Target::GroupFraction(0.5), &[1, 1, 28, 28]);
/// let plan = pass.plan(&m).unwrap();
/// let conv2 = plan.groups.index_of("conv2").unwrap();
/// assert_eq!(plan.keep[conv2].as_ref().unwrap().len(), 25);
/// assert!(plan.macs_after < plan.macs_before);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrunePlan {
    /// The channel groups of the model.
    pub groups: ChannelGroups,
    /// For each group, the channels to keep (sorted), or `None` when it is not touched.
    pub keep: Vec<Option<Vec<usize>>>,
    /// Model MACs for the analysed input before pruning.
    pub macs_before: u64,
    /// Model MACs after pruning (from the same cost model as the core summary).
    pub macs_after: u64,
    /// Groups skipped and why.
    pub notes: Vec<String>,
}

/// Structured pruning: removes whole output channels (Conv2d filters, Linear neurons)
/// together with everything coupled to them (next layers' inputs, BatchNorm channels,
/// residual partners), ranked by a [`Criterion`], so that the pruned model is smaller
/// and faster with ordinary dense kernels. Methods: filter pruning (Li et al. 2017,
/// arXiv 1608.08710), FPGM (He et al. 2019, arXiv 1811.00250), network slimming
/// (Liu et al. 2017, arXiv 1708.06519). Use it when inference speed matters more than the
/// last bit of compression; fine-tune afterwards.
///
/// A group is pruned when the selector picks one of its producers (Conv2d or Linear);
/// groups that are the model's input or output or touch a channel-mixing layer are
/// skipped (noted in the report), groups touching a layer the analysis does not
/// understand are refused with [`PruneError::Unsupported`].
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::structured::{Criterion, StructuredPrune, Target};
/// let mut m = deepcompress_core::models::resnet_small(0);
/// let before = m.summary(&[1, 1, 28, 28]).unwrap().total().macs;
/// let pass = StructuredPrune::new(Selector::kinds(&["Conv2d"]), Criterion::L1, Target::MacFraction(0.5), &[1, 1, 28, 28]);
/// let report = pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
/// let after = m.summary(&[1, 1, 28, 28]).unwrap().total().macs;
/// assert!(after * 2 <= before);
/// assert!(report.layers.contains(&"layer1.block.body.conv1".to_string()));
/// // A fraction outside [0, 1) is refused and the model is left alone.
/// let bad = StructuredPrune::new(Selector::all(), Criterion::L1, Target::GroupFraction(1.0), &[1, 1, 28, 28]);
/// assert!(bad.apply(&mut m, &mut PassContext::new(0)).is_err());
/// assert_eq!(m.summary(&[1, 1, 28, 28]).unwrap().total().macs, after);
/// ```
#[derive(Debug, Clone)]
pub struct StructuredPrune {
    selector: Selector,
    criterion: Criterion,
    target: Target,
    input_shape: Vec<usize>,
    min_channels: usize,
    max_fraction: f64,
}

impl StructuredPrune {
    /// Prunes the groups whose producers `selector` picks, ranked by `criterion`, down to
    /// `target`, with MACs counted for an input of shape `input_shape` (batch first).
    /// At least one channel per group is kept (see [`StructuredPrune::min_channels`]).
    pub fn new(
        selector: Selector,
        criterion: Criterion,
        target: Target,
        input_shape: &[usize],
    ) -> Self {
        Self {
            selector,
            criterion,
            target,
            input_shape: input_shape.to_vec(),
            min_channels: 1,
            max_fraction: DEFAULT_MAX_FRACTION,
        }
    }

    /// With [`Target::MacFraction`], removes at most this fraction (in `(0, 1]`) of any
    /// group's channels (default 0.5). A global MAC target otherwise empties the groups
    /// where a channel saves the most MACs (the high-resolution residual stream) down to
    /// `min_channels`: the "layer collapse" that Tanaka et al. 2020 (arXiv 2006.05467)
    /// describe, which costs more accuracy than spreading the cut.
    pub fn max_fraction(mut self, f: f64) -> Self {
        self.max_fraction = f;
        self
    }

    /// Keeps at least `n` channels in every group (default 1; 0 is refused by the checks).
    pub fn min_channels(mut self, n: usize) -> Self {
        self.min_channels = n;
        self
    }

    fn check(&self) -> Result<()> {
        self.target.check()?;
        if self.min_channels == 0 {
            return Err(PruneError::param("min_channels", 0, "at least one channel must remain"));
        }
        if !(self.max_fraction > 0.0 && self.max_fraction <= 1.0) {
            return Err(PruneError::param("max_fraction", self.max_fraction, "must be in (0, 1]"));
        }
        Ok(())
    }

    /// Decides which channels to keep, without changing the model: validates the
    /// parameters, analyses the channel groups, scores them with the criterion (a group's
    /// score per channel is the sum of its members' scores) and applies the target.
    pub fn plan(&self, model: &Model) -> Result<PrunePlan> {
        self.check()?;
        let groups = ChannelGroups::analyze(model, &self.input_shape)?;
        let selected = model.select(&self.selector)?;
        let mut notes = Vec::new();
        let mut candidates = Vec::new();
        for (i, g) in groups.groups().iter().enumerate() {
            let Some(sel) = g.producers().find(|p| selected.iter().any(|s| s == p)) else {
                continue;
            };
            if let Some(Blocked::Unsupported { path, kind, reason }) =
                g.blocked.iter().find(|b| matches!(b, Blocked::Unsupported { .. }))
            {
                return Err(PruneError::Unsupported {
                    path: path.clone(),
                    kind: kind.clone(),
                    reason: format!("{reason}; it is coupled to the channels of selected `{sel}`"),
                });
            }
            if !g.blocked.is_empty() {
                notes.push(format!("skipped `{sel}`: its channels are {}", g.blocked[0]));
                continue;
            }
            candidates.push(i);
        }
        if candidates.is_empty() {
            return Err(PruneError::NothingSelected {
                what: "prunable Conv2d or Linear".into(),
                hint: format!(" (selected: {selected:?}; {})", notes.join("; ")),
            });
        }
        let per_group = match &self.target {
            Target::PerGroup(map) => {
                let f = per_group_fractions(map, &groups, &candidates)?;
                candidates.retain(|g| f[*g].is_some());
                Some(f)
            }
            _ => None,
        };
        let scores = candidates
            .iter()
            .map(|&g| self.group_scores(model, &groups, g))
            .collect::<Result<Vec<_>>>()?;
        let widths = groups.widths();
        let macs_before = groups.macs(&widths);
        // Channels of each candidate, lowest score first (ties: lower index first).
        let orders: Vec<Vec<usize>> = scores
            .iter()
            .map(|s| {
                let mut idx: Vec<usize> = (0..s.len()).collect();
                idx.sort_by(|&a, &b| s[a].total_cmp(&s[b]).then(a.cmp(&b)));
                idx
            })
            .collect();
        let removable: Vec<usize> =
            candidates.iter().map(|&g| widths[g].saturating_sub(self.min_channels)).collect();
        let removed: Vec<usize> = match &self.target {
            Target::PerGroup(_) => {
                let f = per_group.unwrap_or_default();
                candidates
                    .iter()
                    .zip(&removable)
                    .map(|(&g, &r)| channels_removed(f[g].unwrap_or(0.0), widths[g], r))
                    .collect()
            }
            &Target::GroupFraction(f) => candidates
                .iter()
                .zip(&removable)
                .map(|(&g, &r)| ((f * widths[g] as f64).floor() as usize).min(r))
                .collect(),
            &Target::MacFraction(f) => {
                let capped: Vec<usize> = candidates
                    .iter()
                    .zip(&removable)
                    .map(|(&g, &r)| r.min((self.max_fraction * widths[g] as f64).floor() as usize))
                    .collect();
                self.greedy_macs(&groups, &candidates, &scores, &orders, &capped, f, macs_before)?
            }
        };
        let mut keep = vec![None; widths.len()];
        let mut after = widths.clone();
        for (j, &g) in candidates.iter().enumerate() {
            let mut k = orders[j][removed[j]..].to_vec();
            k.sort_unstable();
            after[g] = k.len();
            keep[g] = Some(k);
        }
        let macs_after = groups.macs(&after);
        Ok(PrunePlan { groups, keep, macs_before, macs_after, notes })
    }

    /// Per-channel scores of group `g`: the sum over its producers (weight criteria) or its
    /// BatchNorms (BN scale).
    fn group_scores(&self, model: &Model, groups: &ChannelGroups, g: usize) -> Result<Vec<f32>> {
        let group = &groups.groups()[g];
        let mut total = vec![0.0f32; group.channels];
        let mut used = 0;
        for m in &group.members {
            let s = match (self.criterion.uses_weights(), m.role) {
                (true, Role::Producer) => {
                    self.criterion.weight_scores(model.layer(&m.path)?, &m.path)?
                }
                (false, Role::PerChannel) => match model.layer_as::<BatchNorm>(&m.path) {
                    Ok(bn) => bn_scores(bn, &m.path)?,
                    Err(_) => continue,
                },
                _ => continue,
            };
            for (t, v) in total.iter_mut().zip(s) {
                *t += v;
            }
            used += 1;
        }
        if used == 0 {
            let first = group.producers().next().unwrap_or("").to_string();
            return Err(PruneError::Unsupported {
                kind: model.layer(&first).map(|l| l.kind().to_string()).unwrap_or_default(),
                path: first,
                reason: format!(
                    "criterion `{}` needs a BatchNorm on these channels",
                    self.criterion.name()
                ),
            });
        }
        Ok(total)
    }

    /// Removes channels one at a time, each time the one with the lowest (normalised)
    /// score per MAC its removal saves, until `fraction` of `macs_before` is gone.
    fn greedy_macs(
        &self,
        groups: &ChannelGroups,
        candidates: &[usize],
        scores: &[Vec<f32>],
        orders: &[Vec<usize>],
        removable: &[usize],
        fraction: f64,
        macs_before: u64,
    ) -> Result<Vec<usize>> {
        // Weight norms grow with fan-in: compare layers by score relative to their mean.
        let scale: Vec<f64> = scores
            .iter()
            .map(|s| {
                let mean = s.iter().map(|&v| f64::from(v)).sum::<f64>() / s.len().max(1) as f64;
                if self.criterion.globally_comparable() || mean <= 0.0 { 1.0 } else { 1.0 / mean }
            })
            .collect();
        let goal = (fraction * macs_before as f64).ceil() as u64;
        let by_group = groups.terms_by_group();
        let mut widths = groups.widths();
        let mut removed = vec![0usize; candidates.len()];
        let mut saved = 0u64;
        while saved < goal {
            let mut best: Option<(f64, usize, u64)> = None;
            for (j, &g) in candidates.iter().enumerate() {
                if removed[j] >= removable[j] {
                    continue;
                }
                let before: u64 =
                    by_group[g].iter().map(|&t| term_macs(&groups.terms()[t], &widths)).sum();
                widths[g] -= 1;
                let after: u64 =
                    by_group[g].iter().map(|&t| term_macs(&groups.terms()[t], &widths)).sum();
                widths[g] += 1;
                let gain = before - after;
                if gain == 0 {
                    continue;
                }
                let s = f64::from(scores[j][orders[j][removed[j]]]) * scale[j];
                let p = s / gain as f64;
                if best.is_none_or(|(bp, _, _)| p < bp) {
                    best = Some((p, j, gain));
                }
            }
            let Some((_, j, gain)) = best else {
                return Err(PruneError::param(
                    "MAC fraction",
                    fraction,
                    format!(
                        "only {:.1} % of the MACs can be removed from the selected groups with \
                         min_channels = {} and max_fraction = {}",
                        100.0 * saved as f64 / macs_before.max(1) as f64,
                        self.min_channels,
                        self.max_fraction
                    ),
                ));
            };
            removed[j] += 1;
            widths[candidates[j]] -= 1;
            saved += gain;
        }
        Ok(removed)
    }
}

/// Channels a per-group fraction `f` removes from a group of `width`, at most
/// `removable`: `f * width` rounded down, where `k / width` gives exactly `k` despite the
/// rounding of the division.
pub(crate) fn channels_removed(f: f64, width: usize, removable: usize) -> usize {
    ((f * width as f64 + 1e-9).floor() as usize).min(removable)
}

/// The fraction of each group named in a [`Target::PerGroup`] map; `None` for the others.
/// Every key must be a producer of one of the `candidates` (selected, prunable groups) and
/// the producers of one group must agree.
fn per_group_fractions(
    map: &BTreeMap<String, f64>,
    groups: &ChannelGroups,
    candidates: &[usize],
) -> Result<Vec<Option<f64>>> {
    if map.is_empty() {
        return Err(PruneError::param("per-group fractions", "{}", "name at least one group"));
    }
    let mut out: Vec<Option<(f64, &str)>> = vec![None; groups.groups().len()];
    for (path, &f) in map {
        let g = groups.index_of(path).filter(|g| candidates.contains(g)).ok_or_else(|| {
            let why = match groups.group_of(path) {
                None => "is not a Conv2d or Linear of the model".to_string(),
                Some(g) if !g.blocked.is_empty() => format!("writes {}", g.blocked[0]),
                Some(_) => "is not picked by the selector".to_string(),
            };
            PruneError::param(
                "per-group fractions",
                format!("`{path}`"),
                format!("{why}; name a producer of a selected, prunable channel group"),
            )
        })?;
        match out[g] {
            Some((other, by)) if other != f => {
                return Err(PruneError::param(
                    "per-group fractions",
                    format!("`{path}` = {f}"),
                    format!("`{by}` = {other} produces the same channel group"),
                ));
            }
            _ => out[g] = Some((f, path)),
        }
    }
    Ok(out.into_iter().map(|o| o.map(|(f, _)| f)).collect())
}

impl Pass for StructuredPrune {
    fn name(&self) -> String {
        format!("structured-prune({})", self.criterion.name())
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.plan(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let plan = self.plan(model).map_err(|e| e.into_core(&name))?;
        ctx.report_progress(&format!("{name}: removing channels"));
        let layers =
            remove_channels(model, &plan.groups, &plan.keep).map_err(|e| e.into_core(&name))?;
        let mut notes = Vec::new();
        for (g, k) in plan.groups.groups().iter().zip(&plan.keep) {
            if let Some(k) = k {
                let producers: Vec<&str> = g.producers().collect();
                notes.push(format!(
                    "{} -> {} channels: {}",
                    g.channels,
                    k.len(),
                    producers.join(", ")
                ));
            }
        }
        notes.push(format!(
            "MACs {} -> {} ({:.1} % removed) for input {:?}",
            plan.macs_before,
            plan.macs_after,
            100.0 * (1.0 - plan.macs_after as f64 / plan.macs_before.max(1) as f64),
            self.input_shape
        ));
        notes.extend(plan.notes);
        Ok(PassReport { pass: name, layers, notes })
    }
}
