//! [`LowRank`]: the pipeline pass that factorises the selected Linear and Conv2d layers.

use crate::conv::{Tucker2Config, tucker2_conv};
use crate::error::{LowRankError, Result};
use crate::factor::{
    Decomposed, Solver, conv_matrix, conv_pair, linear_bias, linear_pair, linear_weight,
};
use crate::rank::{Budget, Candidate, Choice, Rank, allocate};
use crate::svd::RandomizedSvd;
use crate::whiten::{InputGram, Whitening, cross_patches, cross_rows};
use deepcompress_core::layer::{Conv2d, Layer, Linear};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use ndarray::{Axis, Ix2, Ix4};
use serde::Serialize;
use std::fmt::Write as _;

/// How ranks are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Ranks {
    /// Each layer by the same rule.
    PerLayer(Rank),
    /// One budget for all selected layers ([`allocate`]).
    Global(Budget),
}

/// Calibration settings of data-aware factorisation (see [`crate::whiten`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DataAware {
    /// Calibration samples used (the first ones of the context's calibration set).
    pub samples: usize,
    /// Relative damping of the input Gram, in `[0, 1]`.
    pub damping: f64,
}

impl Default for DataAware {
    fn default() -> Self {
        Self { samples: 1024, damping: 0.01 }
    }
}

/// Factorises the selected Linear and Conv2d layers into pairs of real layers: a Linear
/// into `Linear(in -> r)` then `Linear(r -> out)`, a Conv2d into a `kh x kw` convolution
/// onto `r` channels then a 1x1 convolution (see [`crate::factor`]). A layer whose factored
/// form would not be smaller stays dense. Layers become `path.0` and `path.1`.
///
/// Ranks come from a per-layer [`Rank`] rule or one model-wide [`Budget`]; with
/// [`LowRank::data_aware`] the factors minimise the error of each layer's outputs on the
/// context's calibration data instead of the weight error, which loses less accuracy
/// before fine-tuning.
///
/// ```
/// use deepcompress_core::data::Mnist;
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_lowrank::{LowRank, rank::Budget};
///
/// let mnist = Mnist::embedded()?;
/// let calib = mnist.train.take(256);
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let pass = LowRank::global(Selector::all(), Budget::ParamFraction(0.25)).data_aware(256);
/// let mut ctx = PassContext::new(0).with_calibration(&calib);
/// let report = pass.apply(&mut model, &mut ctx)?;
/// assert!(model.num_params() <= 266_610 / 4);
/// assert!(model.layer("fc1.1").is_ok());
/// println!("{}", report.notes.join("\n"));
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowRank {
    #[serde(skip)]
    selector: Selector,
    ranks: Ranks,
    data_aware: Option<DataAware>,
    randomized: Option<RandomizedSvd>,
    tucker_convs: bool,
}

/// What [`LowRank`] decided for one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    /// Layer path.
    pub path: String,
    /// `Linear` or `Conv2d`.
    pub kind: String,
    /// Matrix shape `(m, n)` factorised.
    pub shape: (usize, usize),
    /// Rank kept, `None` when the layer stays dense or becomes Tucker-2.
    pub rank: Option<usize>,
    /// Tucker-2 ranks `(r_out, r_in)` of a convolution (see [`LowRank::tucker_convs`]).
    pub tucker_ranks: Option<(usize, usize)>,
    /// Parameters before (weights and bias).
    pub params_before: u64,
    /// Parameters after.
    pub params_after: u64,
    /// `||W - W'||_F / ||W||_F`, or the output (whitened) relative error when data-aware.
    pub relative_error: f64,
}

/// The per-layer decisions of a [`LowRank`] pass.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// One row per selected layer, in model order.
    pub rows: Vec<PlanRow>,
}

impl Plan {
    /// Parameters of the selected layers before and after.
    pub fn params(&self) -> (u64, u64) {
        self.rows.iter().fold((0, 0), |(b, a), r| (b + r.params_before, a + r.params_after))
    }

    /// A Markdown table of the rows and their total.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from(
            "| layer | kind | matrix | rank | params before | params after | ratio | rel. error |\n|---|---|---|---:|---:|---:|---:|---:|\n",
        );
        for r in &self.rows {
            let rank = match (r.rank, r.tucker_ranks) {
                (Some(k), _) => k.to_string(),
                (None, Some((o, i))) => format!("Tucker {o}x{i}"),
                (None, None) => "dense".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {}x{} | {} | {} | {} | {:.3} | {:.4} |",
                r.path,
                r.kind,
                r.shape.0,
                r.shape.1,
                rank,
                r.params_before,
                r.params_after,
                r.params_after as f64 / r.params_before.max(1) as f64,
                r.relative_error
            );
        }
        let (b, a) = self.params();
        let _ = writeln!(out, "| total | | | | {b} | {a} | {:.3} | |", a as f64 / b.max(1) as f64);
        out
    }
}

/// Batch size of the calibration forward passes.
const CAPTURE_BATCH: usize = 256;

/// Calibration inputs and what each selected layer received from them.
struct Captured {
    x: ndarray::ArrayD<f32>,
    seen: std::collections::BTreeMap<String, ndarray::ArrayD<f32>>,
}

/// `Σ x yᵀ` of two captured inputs of the layer at `path` (im2col patches for a Conv2d).
fn cross_gram(
    model: &Model,
    path: &str,
    x: &ndarray::ArrayD<f32>,
    y: &ndarray::ArrayD<f32>,
) -> Result<ndarray::Array2<f64>> {
    if let Ok(conv) = model.layer_as::<Conv2d>(path) {
        let (x, y) = (dims::<Ix4>(x, path)?, dims::<Ix4>(y, path)?);
        Ok(cross_patches(x, y, &conv.config, path)?.0)
    } else {
        cross_rows(dims::<Ix2>(x, path)?, dims::<Ix2>(y, path)?, path)
    }
}

/// A captured input as a fixed-rank view (`[batch, features]` or `[batch, c, h, w]`).
fn dims<'a, D: ndarray::Dimension>(
    a: &'a ndarray::ArrayD<f32>,
    path: &str,
) -> Result<ndarray::ArrayView<'a, f32, D>> {
    a.view().into_dimensionality::<D>().map_err(|_| {
        deepcompress_core::CoreError::shape(path, "the layer's input rank", a.shape()).into()
    })
}

/// One selected layer, decomposed and ready to be cut.
struct Work {
    path: String,
    matrix: ndarray::Array2<f32>,
    conv: Option<Conv2d>,
    linear: Option<Linear>,
    shape: (usize, usize),
    /// The SVD of the matrix; `None` for a convolution offered as Tucker-2.
    decomposed: Option<Decomposed>,
    /// Energies of the output- and input-channel unfoldings, for Tucker-2.
    tucker: Option<(Vec<f64>, Vec<f64>)>,
    fixed_params: u64,
    /// Input and output positions (1 for a Linear).
    positions: (u64, u64),
}

impl Work {
    fn decomposed(&self) -> &Decomposed {
        self.decomposed.as_ref().expect("matrix candidates are decomposed")
    }

    /// The Tucker-2 chain at `ranks`, with its relative kernel error.
    fn tucker_layers(&self, ranks: (usize, usize)) -> Result<(Vec<Box<dyn Layer>>, f64)> {
        let conv = self.conv.as_ref().expect("Tucker-2 candidates are convolutions");
        let f = tucker2_conv(&self.path, conv, &Tucker2Config::new(ranks.0, ranks.1))?;
        let err = f.relative_error;
        Ok((f.into_layers(), err))
    }

    /// The replacement layers for factors `A` and `B`.
    fn build(
        &self,
        a: ndarray::Array2<f32>,
        b: ndarray::Array2<f32>,
    ) -> Result<Vec<Box<dyn Layer>>> {
        match (&self.linear, &self.conv) {
            (Some(l), _) => linear_pair(a, b, linear_bias(l)?),
            (None, Some(c)) => conv_pair(c, a, b, &self.path),
            (None, None) => unreachable!("every work item is a Linear or a Conv2d"),
        }
    }
}

impl LowRank {
    /// Every selected layer by `rank`.
    pub fn new(selector: Selector, rank: Rank) -> Self {
        Self {
            selector,
            ranks: Ranks::PerLayer(rank),
            data_aware: None,
            randomized: None,
            tucker_convs: false,
        }
    }

    /// All selected layers under one `budget`.
    pub fn global(selector: Selector, budget: Budget) -> Self {
        Self {
            selector,
            ranks: Ranks::Global(budget),
            data_aware: None,
            randomized: None,
            tucker_convs: false,
        }
    }

    /// Minimises output error on the first `samples` calibration samples (the context
    /// must then carry calibration data), with the default damping 0.01.
    pub fn data_aware(mut self, samples: usize) -> Self {
        self.data_aware = Some(DataAware { samples, ..DataAware::default() });
        self
    }

    /// Computes only the leading components, by randomized SVD (Halko et al. 2011), for
    /// large layers. Needs a rank known from the shape ([`Rank::Fixed`] or
    /// [`Rank::ParamFraction`]): energy rules and global budgets need the whole spectrum.
    /// The reported errors stay exact for the factors produced.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_core::pass::PassContext;
    /// use deepcompress_lowrank::{LowRank, rank::{Budget, Rank}, svd::RandomizedSvd};
    ///
    /// let mut model = deepcompress_core::models::lenet_300_100(0);
    /// let fast = LowRank::new(Selector::path("fc1"), Rank::Fixed(16)).randomized(RandomizedSvd::default());
    /// let exact = LowRank::new(Selector::path("fc1"), Rank::Fixed(16));
    /// let ctx = PassContext::new(0);
    /// let (f, e) = (fast.plan(&mut model, &ctx)?, exact.plan(&mut model, &ctx)?);
    /// assert!(f.rows[0].relative_error <= 1.05 * e.rows[0].relative_error);
    /// let global = LowRank::global(Selector::all(), Budget::ParamFraction(0.3));
    /// assert!(global.randomized(RandomizedSvd::default()).plan(&mut model, &ctx).is_err());
    /// # Ok::<(), deepcompress_lowrank::LowRankError>(())
    /// ```
    pub fn randomized(mut self, settings: RandomizedSvd) -> Self {
        self.randomized = Some(settings);
        self
    }

    /// The SVD solver for a layer of matrix shape `shape`.
    fn solver(&self, shape: (usize, usize)) -> Result<Solver> {
        Ok(match (self.randomized, self.ranks) {
            (None, _) => Solver::Exact,
            (Some(r), Ranks::PerLayer(rule @ (Rank::Fixed(_) | Rank::ParamFraction(_)))) => {
                Solver::Randomized(r, rule.choose(&[], shape)?)
            }
            (Some(_), other) => return Err(randomized_needs_rank(other)),
        })
    }

    /// With a global budget, offers every selected convolution as Tucker-2 (Kim et al.
    /// 2015) instead of the channel SVD: the allocator then drops output- and
    /// input-channel components (the "core" components) next to the singular components
    /// of the other layers. Convolutions are then fitted to their weights, not to
    /// calibration outputs. For per-layer Tucker-2 ranks use [`crate::DecomposeConv`].
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_core::pass::PassContext;
    /// use deepcompress_lowrank::{LowRank, rank::Budget};
    ///
    /// let mut model = deepcompress_core::models::lenet5(0);
    /// let pass = LowRank::global(Selector::all(), Budget::ParamFraction(0.2)).tucker_convs();
    /// let plan = pass.plan(&mut model, &PassContext::new(0))?;
    /// let (before, after) = plan.params();
    /// assert!(after as f64 <= 0.2 * before as f64);
    /// # Ok::<(), deepcompress_lowrank::LowRankError>(())
    /// ```
    pub fn tucker_convs(mut self) -> Self {
        self.tucker_convs = true;
        self
    }

    /// Sets every data-aware setting.
    pub fn with_data_aware(mut self, settings: DataAware) -> Self {
        self.data_aware = Some(settings);
        self
    }

    /// The selected `Linear` and `Conv2d` paths; other layers are skipped.
    fn targets(&self, model: &Model) -> Result<Vec<String>> {
        let selected = model.select(&self.selector)?;
        let mut out = Vec::new();
        for p in &selected {
            if model.layer_as::<Linear>(p).is_ok() {
                out.push(p.clone());
            } else if let Ok(conv) = model.layer_as::<Conv2d>(p) {
                conv_matrix(conv, p)?; // refuses grouped convolutions
                out.push(p.clone());
            }
        }
        if out.is_empty() {
            return Err(LowRankError::nothing_selected("Linear or Conv2d", &selected));
        }
        Ok(out)
    }

    fn check(&self, model: &Model) -> Result<Vec<String>> {
        match self.ranks {
            Ranks::PerLayer(r) => r.check()?,
            Ranks::Global(b) => b.check()?,
        }
        if self.tucker_convs && !matches!(self.ranks, Ranks::Global(_)) {
            return Err(LowRankError::param(
                "tucker_convs",
                "with per-layer ranks",
                "needs a global budget; for per-layer Tucker-2 ranks use DecomposeConv",
            ));
        }
        if self.randomized.is_some()
            && !matches!(self.ranks, Ranks::PerLayer(Rank::Fixed(_) | Rank::ParamFraction(_)))
        {
            return Err(randomized_needs_rank(self.ranks));
        }
        if let Some(d) = self.data_aware {
            if d.samples == 0 {
                return Err(LowRankError::param("calibration samples", 0, "must be positive"));
            }
            if !(d.damping.is_finite() && (0.0..=1.0).contains(&d.damping)) {
                return Err(LowRankError::param("damping", d.damping, "must be in [0, 1]"));
            }
        }
        self.targets(model)
    }

    /// Decides the ranks and computes the factors without changing `model`; returns the
    /// plan and the replacement layers (`None` for a layer that stays dense).
    #[allow(clippy::type_complexity)]
    fn prepare(
        &self,
        model: &mut Model,
        ctx: &PassContext<'_>,
    ) -> Result<(Plan, Vec<Option<Vec<Box<dyn Layer>>>>)> {
        let paths = self.check(model)?;
        let (whitening, captured) = self.whitenings(model, ctx, &paths)?;
        let positions = self.output_positions(model, ctx, &paths)?;
        let mut work = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let (linear, conv, w) = if let Ok(l) = model.layer_as::<Linear>(p) {
                (Some(l.clone()), None, linear_weight(l, p)?)
            } else {
                let c = model.layer_as::<Conv2d>(p)?;
                (None, Some(c.clone()), conv_matrix(c, p)?)
            };
            let bias_len = linear.as_ref().and_then(|l| l.bias.as_ref()).map_or(0, |b| b.len())
                as u64
                + conv.as_ref().and_then(|c| c.bias.as_ref()).map_or(0, |b| b.len()) as u64;
            let as_tucker = self.tucker_convs && conv.is_some();
            let (decomposed, tucker) = if as_tucker {
                let kernel = conv.as_ref().expect("a convolution").weight.value();
                let kernel = dims::<Ix4>(kernel, p)?;
                (None, Some((mode_energy(kernel, 0)?, mode_energy(kernel, 1)?)))
            } else {
                let solver = self.solver(w.dim()).map_err(|e| crate::factor::at_layer(e, p))?;
                (Some(Decomposed::with_solver(&w, whitening[i].as_ref(), solver, p)?), None)
            };
            work.push(Work {
                path: p.clone(),
                shape: w.dim(),
                decomposed,
                tucker,
                matrix: w,
                linear,
                conv,
                fixed_params: bias_len,
                positions: positions[i],
            });
        }
        let ranks: Vec<Choice> = match self.ranks {
            Ranks::PerLayer(rule) => work
                .iter()
                .map(|w| {
                    let r = rule
                        .choose(w.decomposed().spectrum(), w.shape)
                        .map_err(|e| crate::factor::at_layer(e, &w.path))?;
                    let (m, n) = w.shape;
                    Ok(if r * (m + n) < m * n { Choice::Rank(r) } else { Choice::Dense })
                })
                .collect::<Result<_>>()?,
            Ranks::Global(budget) => {
                let cands: Vec<Candidate> = work
                    .iter()
                    .map(|w| match (&w.tucker, &w.conv) {
                        (Some((out_e, in_e)), Some(conv)) => {
                            let s = conv.weight.value().shape();
                            Candidate::tucker(
                                &w.path,
                                (s[0], s[1], s[2], s[3]),
                                out_e.clone(),
                                in_e.clone(),
                                w.fixed_params,
                                w.positions,
                            )
                        }
                        _ => Candidate::new(
                            &w.path,
                            w.shape,
                            w.decomposed().spectrum().to_vec(),
                            w.fixed_params,
                            w.positions.1,
                        ),
                    })
                    .collect();
                allocate(&cands, budget)?
            }
        };
        if let Some(captured) = &captured {
            self.compensate(model, &mut work, &ranks, captured)?;
        }
        let mut plan = Plan::default();
        let mut layers = Vec::new();
        for (w, rank) in work.iter().zip(ranks) {
            let before = (w.shape.0 * w.shape.1) as u64 + w.fixed_params;
            let kind = if w.linear.is_some() { "Linear" } else { "Conv2d" };
            let (after, err, replacement) = match rank {
                Choice::Dense => (before, 0.0, None),
                Choice::Rank(r) => {
                    let (a, b, _, rel) = w.decomposed().truncate(r, &w.path)?;
                    let seq = w.build(a, b)?;
                    let after = crate::factor::count_params(&seq) as u64;
                    (after, rel, Some(seq))
                }
                Choice::Tucker(ro, ri) => {
                    let (seq, rel) = w.tucker_layers((ro, ri))?;
                    let after = crate::factor::count_params(&seq) as u64;
                    (after, rel, Some(seq))
                }
            };
            plan.rows.push(PlanRow {
                path: w.path.clone(),
                kind: kind.into(),
                shape: w.shape,
                rank: match rank {
                    Choice::Rank(r) => Some(r),
                    _ => None,
                },
                tucker_ranks: match rank {
                    Choice::Tucker(o, i) => Some((o, i)),
                    _ => None,
                },
                params_before: before,
                params_after: after,
                relative_error: err,
            });
            layers.push(replacement);
        }
        Ok((plan, layers))
    }

    /// The ranks and errors this pass would produce, without changing `model`.
    ///
    /// ```
    /// use deepcompress_core::model::Selector;
    /// use deepcompress_core::pass::PassContext;
    /// use deepcompress_lowrank::{LowRank, rank::Rank};
    ///
    /// let mut model = deepcompress_core::models::lenet_300_100(0);
    /// let ctx = PassContext::new(0);
    /// let plan = LowRank::new(Selector::all(), Rank::Fixed(9)).plan(&mut model, &ctx)?;
    /// assert_eq!(plan.rows[0].rank, Some(9));
    /// // fc3 is 10x100: rank 9 stores 990 weights instead of 1,000, rank 10 would not save.
    /// assert_eq!(plan.rows[2].params_after, 9 * 110 + 10);
    /// assert!(LowRank::new(Selector::all(), Rank::Fixed(10)).plan(&mut model, &ctx)?.rows[2].rank.is_none());
    /// // Rank 20 does not exist for fc3's 10x100 weight.
    /// assert!(LowRank::new(Selector::all(), Rank::Fixed(20)).plan(&mut model, &ctx).is_err());
    /// assert!(model.layer("fc1").is_ok()); // unchanged
    /// # Ok::<(), deepcompress_lowrank::LowRankError>(())
    /// ```
    pub fn plan(&self, model: &mut Model, ctx: &PassContext<'_>) -> Result<Plan> {
        self.prepare(model, ctx).map(|(plan, _)| plan)
    }

    /// Whitening per path, when data-aware.
    fn whitenings(
        &self,
        model: &mut Model,
        ctx: &PassContext<'_>,
        paths: &[String],
    ) -> Result<(Vec<Option<Whitening>>, Option<Captured>)> {
        let Some(d) = self.data_aware else {
            return Ok((vec![None; paths.len()], None));
        };
        let data = ctx.calibration.ok_or_else(|| {
            LowRankError::param(
                "calibration data",
                "none",
                "data-aware factorisation needs PassContext::with_calibration",
            )
        })?;
        if data.is_empty() {
            return Err(LowRankError::param("calibration data", 0, "is empty"));
        }
        let n = d.samples.min(data.len());
        let x = data.inputs.slice_axis(Axis(0), (0..n).into()).to_owned();
        let seen = model.capture_inputs(paths, &x, CAPTURE_BATCH)?;
        let whitenings = paths
            .iter()
            .map(|p| {
                let input = &seen[p];
                let gram = cross_gram(model, p, input, input)?;
                Whitening::new(&InputGram { gram, samples: input.len_of(Axis(0)) }, d.damping, p)
                    .map(Some)
            })
            .collect::<Result<_>>()?;
        Ok((whitenings, Some(Captured { x, seen })))
    }

    /// Recomputes the factors layer by layer in model order, each from the inputs it
    /// receives once the layers before it are factored, compensating their error
    /// (see [`Decomposed::compensated`]). Ranks stay as allocated.
    fn compensate(
        &self,
        model: &Model,
        work: &mut [Work],
        ranks: &[Choice],
        captured: &Captured,
    ) -> Result<()> {
        let damping = self.data_aware.map_or(0.0, |d| d.damping);
        let mut staged = model.clone();
        for (w, rank) in work.iter_mut().zip(ranks) {
            let r = match *rank {
                Choice::Dense => continue,
                Choice::Tucker(o, i) => {
                    // Fitted to the weights; still put in so later layers see its outputs.
                    staged.replace_with_sequence(&w.path, w.tucker_layers((o, i))?.0)?;
                    continue;
                }
                Choice::Rank(r) => r,
            };
            let now = staged.capture_inputs(&[&w.path], &captured.x, CAPTURE_BATCH)?;
            let (orig, now) = (&captured.seen[&w.path], &now[&w.path]);
            let gram = cross_gram(&staged, &w.path, now, now)?;
            let whitening = Whitening::new(
                &InputGram { gram, samples: now.len_of(Axis(0)) },
                damping,
                &w.path,
            )?;
            let cross = cross_gram(&staged, &w.path, orig, now)?;
            let solver = self.solver(w.shape)?;
            let refit = Decomposed::compensated(&w.matrix, &cross, &whitening, solver, &w.path)?;
            let (a, b, _, _) = refit.truncate(r, &w.path)?;
            w.decomposed = Some(refit);
            staged.replace_with_sequence(&w.path, w.build(a, b)?)?;
        }
        Ok(())
    }

    /// Multiply-accumulates per weight per sample for each path: the output positions of
    /// a convolution (1 for a Linear). Only MAC budgets need them, and they need the
    /// input shape, which the calibration data gives.
    fn output_positions(
        &self,
        model: &Model,
        ctx: &PassContext<'_>,
        paths: &[String],
    ) -> Result<Vec<(u64, u64)>> {
        if !matches!(self.ranks, Ranks::Global(Budget::MacFraction(_))) {
            return Ok(vec![(1, 1); paths.len()]);
        }
        let data = ctx.calibration.ok_or_else(|| {
            LowRankError::param(
                "calibration data",
                "none",
                "a MAC budget needs the input shape: give PassContext::with_calibration",
            )
        })?;
        let mut shape = vec![1];
        shape.extend_from_slice(data.sample_shape());
        let summary = model.summary(&shape)?;
        let spatial = |s: &[usize]| if s.len() == 4 { (s[2] * s[3]) as u64 } else { 1 };
        Ok(paths
            .iter()
            .map(|p| {
                summary
                    .rows
                    .iter()
                    .find(|r| &r.path == p)
                    .map_or((1, 1), |r| (spatial(&r.input), spatial(&r.output)))
            })
            .collect())
    }
}

/// Energies `σ²` of the mode-`mode` unfolding of a kernel (0: output channels, 1: input
/// channels), descending.
fn mode_energy(kernel: ndarray::ArrayView4<f32>, mode: usize) -> Result<Vec<f64>> {
    let unfolded = crate::conv::unfold(kernel, mode);
    let s = deepcompress_core::linalg::svd(unfolded.view())?.s;
    Ok(s.iter().map(|&v| (v as f64).powi(2)).collect())
}

/// The refusal of a randomized SVD under a rule that needs the whole spectrum.
fn randomized_needs_rank(ranks: Ranks) -> LowRankError {
    LowRankError::param(
        "ranks",
        format!("{ranks:?}"),
        "randomized SVD needs a rank known from the shape (Rank::Fixed or Rank::ParamFraction)",
    )
}

impl Pass for LowRank {
    fn name(&self) -> String {
        let how = match self.ranks {
            Ranks::PerLayer(r) => format!("{r:?}"),
            Ranks::Global(b) => format!("global {b:?}"),
        };
        let data = if self.data_aware.is_some() { ", data-aware" } else { "" };
        format!("low-rank ({how}{data})")
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.check(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let (plan, layers) = self.prepare(model, ctx).map_err(|e| e.into_core(&name))?;
        // Everything is computed; the surgery below only swaps layers in.
        let mut report = PassReport { pass: name, ..PassReport::default() };
        for (row, seq) in plan.rows.iter().zip(layers) {
            match seq {
                Some(seq) => {
                    model.replace_with_sequence(&row.path, seq)?;
                    report.layers.push(row.path.clone());
                    let how = match (row.rank, row.tucker_ranks) {
                        (Some(r), _) => format!("rank {r}"),
                        (None, Some((o, i))) => format!("Tucker-2 ranks ({o}, {i})"),
                        (None, None) => unreachable!("a replacement has ranks"),
                    };
                    report.notes.push(format!(
                        "{}: {how}, {} -> {} parameters, relative error {:.4}",
                        row.path, row.params_before, row.params_after, row.relative_error
                    ));
                }
                None => report.notes.push(match self.ranks {
                    Ranks::PerLayer(_) => {
                        format!("{}: kept dense (a factored form would not be smaller)", row.path)
                    }
                    Ranks::Global(_) => format!(
                        "{}: kept dense (the budget is met at less loss elsewhere)",
                        row.path
                    ),
                }),
            }
        }
        Ok(report)
    }
}
