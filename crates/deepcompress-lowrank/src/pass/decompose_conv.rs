//! [`DecomposeConv`]: replaces each selected Conv2d by a separable, Tucker-2 or CP chain.

use crate::conv::{
    ConvFactorization, CpConfig, Tucker2Config, cp_conv, separable_conv, tucker2_conv,
};
use crate::error::{LowRankError, Result};
use crate::rank::vbmf_tucker_ranks;
use deepcompress_core::layer::Conv2d;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use ndarray::Ix4;
use serde::Serialize;

/// Which decomposition [`DecomposeConv`] applies (see [`crate::conv`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConvMethod {
    /// `kh x 1` then `1 x kw` (Jaderberg, Vedaldi and Zisserman 2014, arXiv 1405.3866).
    Separable,
    /// `1x1`, `kh x kw` core, `1x1` (Kim et al. 2015, arXiv 1511.06530), HOSVD then HOOI.
    Tucker2,
    /// `1x1`, depthwise `kh x 1`, depthwise `1 x kw`, `1x1` (Lebedev et al. 2014,
    /// arXiv 1412.6553), by ALS.
    Cp,
}

/// How [`DecomposeConv`] sizes each decomposition.
///
/// ```
/// use deepcompress_lowrank::ConvRanks;
/// assert!(ConvRanks::ParamFraction(0.3).check().is_ok());
/// assert!(ConvRanks::Fixed(0).check().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ConvRanks {
    /// One rank `r` (separable, CP) or `(r, r)` (Tucker-2).
    Fixed(usize),
    /// Tucker-2 ranks `(r_out, r_in)`.
    Tucker(usize, usize),
    /// The largest ranks whose layers hold at most this fraction, in `(0, 1]`, of the
    /// original weights (Tucker-2 scales both channel ranks by the same factor).
    ParamFraction(f64),
    /// Tucker-2 ranks from variational Bayesian matrix factorisation of the two channel
    /// unfoldings (Nakajima et al. 2013), as Kim et al. do; no parameter to choose.
    Vbmf,
}

impl ConvRanks {
    /// Checks the rule's own parameters.
    pub fn check(&self) -> Result<()> {
        match *self {
            ConvRanks::Fixed(0) => Err(LowRankError::param("rank", 0, "must be at least 1")),
            ConvRanks::Tucker(a, b) if a == 0 || b == 0 => Err(LowRankError::param(
                "Tucker ranks",
                format!("({a}, {b})"),
                "must be at least 1",
            )),
            ConvRanks::ParamFraction(f) if !(f > 0.0 && f <= 1.0) => {
                Err(LowRankError::param("parameter fraction", f, "must be in (0, 1]"))
            }
            _ => Ok(()),
        }
    }
}

/// Replaces every selected Conv2d by the chain of one [`ConvMethod`], sized by
/// [`ConvRanks`]; a layer whose chain would not be smaller stays as it is. The chain's
/// layers become `path.0`, `path.1`, ... and fine-tune like any other layers.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_lowrank::{ConvMethod, ConvRanks, DecomposeConv};
///
/// let mut model = deepcompress_core::models::lenet5(0);
/// let pass = DecomposeConv::new(Selector::path("conv2"), ConvMethod::Tucker2, ConvRanks::Tucker(16, 10));
/// let report = pass.apply(&mut model, &mut PassContext::new(0))?;
/// assert_eq!(report.layers, vec!["conv2"]);
/// assert!(model.layer("conv2.2").is_ok()); // 1x1, 5x5 core, 1x1
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecomposeConv {
    #[serde(skip)]
    selector: Selector,
    method: ConvMethod,
    ranks: ConvRanks,
    max_iters: Option<usize>,
}

impl DecomposeConv {
    /// A pass over the Conv2d layers `selector` picks.
    pub fn new(selector: Selector, method: ConvMethod, ranks: ConvRanks) -> Self {
        Self { selector, method, ranks, max_iters: None }
    }

    /// Caps the iterations of HOOI (Tucker-2) or ALS (CP); the methods' defaults otherwise.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = Some(n);
        self
    }

    fn targets(&self, model: &Model) -> Result<Vec<String>> {
        self.ranks.check()?;
        let uses_vbmf = self.ranks == ConvRanks::Vbmf;
        if uses_vbmf && self.method != ConvMethod::Tucker2 {
            return Err(LowRankError::param(
                "ranks",
                "Vbmf",
                "VBMF picks the two channel ranks of Tucker-2 only",
            ));
        }
        if matches!(self.ranks, ConvRanks::Tucker(..)) && self.method != ConvMethod::Tucker2 {
            return Err(LowRankError::param(
                "ranks",
                format!("{:?}", self.ranks),
                "are for Tucker-2",
            ));
        }
        let selected = model.select(&self.selector)?;
        let out: Vec<String> =
            selected.iter().filter(|p| model.layer_as::<Conv2d>(p).is_ok()).cloned().collect();
        if out.is_empty() {
            return Err(LowRankError::nothing_selected("Conv2d", &selected));
        }
        Ok(out)
    }

    /// Decomposes one layer.
    fn decompose(&self, path: &str, conv: &Conv2d, seed: u64) -> Result<ConvFactorization> {
        let w = conv.weight.value();
        let (n, c, kh, kw) = (w.shape()[0], w.shape()[1], w.shape()[2], w.shape()[3]);
        let full = (n * c * kh * kw) as f64;
        match self.method {
            ConvMethod::Separable => {
                let r = match self.ranks {
                    ConvRanks::Fixed(r) => r,
                    ConvRanks::ParamFraction(f) => ((f * full / (c * kh + n * kw) as f64).floor()
                        as usize)
                        .clamp(1, (c * kh).min(n * kw)),
                    _ => unreachable!("checked in targets()"),
                };
                separable_conv(path, conv, r)
            }
            ConvMethod::Cp => {
                let r = match self.ranks {
                    ConvRanks::Fixed(r) => r,
                    ConvRanks::ParamFraction(f) => {
                        ((f * full / (n + c + kh + kw) as f64).floor() as usize).max(1)
                    }
                    _ => unreachable!("checked in targets()"),
                };
                let mut cfg = CpConfig::new(r).seed(seed);
                if let Some(it) = self.max_iters {
                    cfg = cfg.max_iters(it);
                }
                cp_conv(path, conv, &cfg)
            }
            ConvMethod::Tucker2 => {
                let (r_out, r_in) = match self.ranks {
                    ConvRanks::Fixed(r) => (r, r),
                    ConvRanks::Tucker(a, b) => (a, b),
                    ConvRanks::Vbmf => {
                        let w4 = w.view().into_dimensionality::<Ix4>().map_err(|_| {
                            deepcompress_core::CoreError::shape(path, "a 4-D kernel", w.shape())
                        })?;
                        vbmf_tucker_ranks(w4)?
                    }
                    ConvRanks::ParamFraction(f) => {
                        Tucker2Config::for_fraction(f, (n, c, kh, kw)).ranks
                    }
                };
                let mut cfg = Tucker2Config::new(r_out, r_in);
                if let Some(it) = self.max_iters {
                    cfg = cfg.max_iters(it);
                }
                tucker2_conv(path, conv, &cfg)
            }
        }
    }
}

impl Pass for DecomposeConv {
    fn name(&self) -> String {
        format!("{:?} ({:?})", self.method, self.ranks)
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        let paths = self.targets(model).map_err(|e| e.into_core(&self.name()))?;
        for p in &paths {
            let conv = model.layer_as::<Conv2d>(p)?;
            if conv.config.groups != 1 {
                return Err(LowRankError::Unsupported {
                    path: p.clone(),
                    kind: "Conv2d".into(),
                    reason: format!("grouped convolution (groups = {})", conv.config.groups),
                }
                .into_core(&self.name()));
            }
        }
        Ok(())
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let paths = self.targets(model).map_err(|e| e.into_core(&name))?;
        let mut done = Vec::new();
        for p in &paths {
            let conv = model.layer_as::<Conv2d>(p)?;
            let f = self.decompose(p, conv, ctx.seed).map_err(|e| e.into_core(&name))?;
            ctx.report_progress(&format!("{p}: {} ranks {:?}", f.method, f.ranks));
            done.push((p.clone(), f));
        }
        // Every layer is decomposed; only now is the model changed.
        let mut report = PassReport { pass: name, ..PassReport::default() };
        for (p, f) in done {
            if f.params_after >= f.params_before {
                report.notes.push(format!(
                    "{p}: kept dense ({} ranks {:?} would hold {} of {} parameters)",
                    f.method, f.ranks, f.params_after, f.params_before
                ));
                continue;
            }
            report.notes.push(format!(
                "{p}: {} ranks {:?}, {} -> {} parameters, relative kernel error {:.4}",
                f.method, f.ranks, f.params_before, f.params_after, f.relative_error
            ));
            model.replace_with_sequence(&p, f.into_layers())?;
            report.layers.push(p);
        }
        Ok(report)
    }
}
