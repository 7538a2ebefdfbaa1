//! Replacing one layer by a factored pair of real layers.
//!
//! A factored layer is an ordinary sequence of [`Linear`](deepcompress_core::layer::Linear)
//! or [`Conv2d`](deepcompress_core::layer::Conv2d) layers: it trains with the core trainer,
//! saves through safetensors and runs with the same GEMM kernels, so the saving in
//! parameters is a saving in time too.

mod conv;
mod linear;

pub use conv::factor_conv;
pub use linear::factor_linear;

pub(crate) use conv::{conv_matrix, conv_pair};
pub(crate) use linear::{at_layer, bias as linear_bias, linear_pair, weight as linear_weight};

use crate::error::{Result, check_finite};
use crate::svd::tail_norm;
use crate::whiten::Whitening;
use deepcompress_core::layer::Layer;
use deepcompress_core::linalg::{self, Svd};
use deepcompress_core::ops::matmul;
use ndarray::{Array2, s};

/// A layer replaced by a factored sequence, with the error of the replacement.
#[derive(Debug)]
pub struct Factored {
    /// The layers that replace the original, in order.
    pub layers: Vec<Box<dyn Layer>>,
    /// Rank kept.
    pub rank: usize,
    /// Weight and bias parameters of the original layer.
    pub params_before: usize,
    /// Weight and bias parameters of the replacement.
    pub params_after: usize,
    /// Frobenius error of the replacement: `||W - W'||_F`, or with calibration data the
    /// output error `||(W - W')S||_F` (see [`crate::whiten`]). Exact by Eckart–Young.
    pub error: f64,
    /// `error` divided by the same norm of the untruncated weight.
    pub relative_error: f64,
}

impl Factored {
    /// `params_after / params_before`.
    pub fn param_ratio(&self) -> f64 {
        self.params_after as f64 / self.params_before.max(1) as f64
    }
}

/// Parameter count of a set of layers.
pub(crate) fn count_params(layers: &[Box<dyn Layer>]) -> usize {
    layers.iter().flat_map(|l| l.params()).map(|(_, p)| p.len()).sum()
}

/// The full SVD of a weight matrix (of `W S` when whitened), computed once so that a rank
/// can be chosen from the spectrum and the factors cut at it without a second SVD.
#[derive(Debug, Clone)]
pub(crate) struct Decomposed {
    full: Svd,
    s_inv: Option<Array2<f32>>,
    /// `||M||_F²` of the decomposed matrix, for errors when only leading components exist.
    total: f64,
}

/// How a [`Decomposed`] gets its SVD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Solver {
    /// Every component (exact).
    Exact,
    /// The leading `rank` components by randomized SVD.
    Randomized(crate::svd::RandomizedSvd, usize),
}

impl Solver {
    fn svd(&self, m: &Array2<f32>, path: &str) -> Result<Svd> {
        match *self {
            Solver::Exact => Ok(linalg::svd(m.view())?),
            Solver::Randomized(r, rank) => r.compute(m.view(), rank).map_err(|e| at_layer(e, path)),
        }
    }
}

impl Decomposed {
    fn from_matrix(
        m: &Array2<f32>,
        s_inv: Option<Array2<f32>>,
        solver: Solver,
        path: &str,
    ) -> Result<Self> {
        let total = m.iter().map(|&v| (v as f64).powi(2)).sum();
        Ok(Self { full: solver.svd(m, path)?, s_inv, total })
    }

    pub(crate) fn new(w: &Array2<f32>, whitening: Option<&Whitening>, path: &str) -> Result<Self> {
        Self::with_solver(w, whitening, Solver::Exact, path)
    }

    pub(crate) fn with_solver(
        w: &Array2<f32>,
        whitening: Option<&Whitening>,
        solver: Solver,
        path: &str,
    ) -> Result<Self> {
        check_finite(w.iter(), path, "weight")?;
        match whitening {
            None => Self::from_matrix(w, None, solver, path),
            Some(wh) => {
                if wh.s.nrows() != w.ncols() {
                    return Err(deepcompress_core::CoreError::shape(
                        path,
                        format!("[out, {}] to match the calibration inputs", wh.s.nrows()),
                        w.shape(),
                    )
                    .into());
                }
                let ws = matmul(w.view(), wh.s.view());
                Self::from_matrix(&ws, Some(wh.s_inv.clone()), solver, path)
            }
        }
    }

    /// The error-compensating factorisation of a layer whose inputs have changed from `X`
    /// (the original model's) to `X̃` (after earlier layers were factored): the rank-`r`
    /// `W'` minimising `||W X - W' X̃||_F`. With `C = X X̃ᵀ` and `X̃ X̃ᵀ = S̃ S̃ᵀ`, the
    /// unconstrained optimum is `W* = W C (S̃ S̃ᵀ)⁻¹`, and the residual splits into a part
    /// no `W'` can remove plus `||(W* - W') S̃||_F`, so `W'` is the truncated SVD of
    /// `W* S̃ = W C S̃⁻ᵀ` mapped back by `S̃⁻¹`.
    pub(crate) fn compensated(
        w: &Array2<f32>,
        cross: &Array2<f64>,
        whitening: &Whitening,
        solver: Solver,
        path: &str,
    ) -> Result<Self> {
        check_finite(w.iter(), path, "weight")?;
        let n = w.ncols();
        if cross.dim() != (n, n) || whitening.s.nrows() != n {
            return Err(deepcompress_core::CoreError::shape(
                path,
                format!("[out, {}] to match the calibration inputs", cross.nrows()),
                w.shape(),
            )
            .into());
        }
        let wc = w.mapv(f64::from).dot(cross);
        let m = wc.dot(&whitening.s_inv.t().mapv(f64::from)).mapv(|v| v as f32);
        check_finite(m.iter(), path, "compensated weight")?;
        Self::from_matrix(&m, Some(whitening.s_inv.clone()), solver, path)
    }

    /// Singular values, descending.
    pub(crate) fn spectrum(&self) -> &[f32] {
        self.full.s.as_slice().unwrap_or(&[])
    }

    /// Factors `A` (`m x r`), `B` (`r x n`), error and relative error at rank `r`.
    pub(crate) fn truncate(
        &self,
        r: usize,
        path: &str,
    ) -> Result<(Array2<f32>, Array2<f32>, f64, f64)> {
        let (m, n) = (self.full.u.nrows(), self.full.vt.ncols());
        crate::svd::check_rank(r, (m, n)).map_err(|e| at_layer(e, path))?;
        if r > self.full.s.len() {
            return Err(at_layer(
                crate::LowRankError::param(
                    "rank",
                    r,
                    format!("only {} leading components were computed", self.full.s.len()),
                ),
                path,
            ));
        }
        let cut = Svd {
            u: self.full.u.slice(s![.., ..r]).to_owned(),
            s: self.full.s.slice(s![..r]).to_owned(),
            vt: self.full.vt.slice(s![..r, ..]).to_owned(),
        };
        let (a, b) = crate::svd::balanced(&cut);
        let b = match &self.s_inv {
            Some(inv) => matmul(b.view(), inv.view()),
            None => b,
        };
        let complete = self.full.s.len() == m.min(n);
        let err = if complete {
            tail_norm(self.spectrum(), r)
        } else {
            // U_r S_r V_rᵀ = U_r U_rᵀ M for a randomized SVD too (U lies in the sketch's
            // range), so Pythagoras gives the error from the kept components alone.
            let kept: f64 = self.spectrum()[..r].iter().map(|&v| (v as f64).powi(2)).sum();
            (self.total - kept).max(0.0).sqrt()
        };
        let total = self.total.sqrt();
        Ok((a, b, err, if total == 0.0 { 0.0 } else { err / total }))
    }
}
