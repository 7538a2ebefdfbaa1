//! Data-aware factorisation: minimise the error of the layer's outputs, `||(W - W')X||_F`,
//! on calibration inputs `X`, instead of the weight error `||W - W'||_F`.
//!
//! With `G = X Xᵀ = S Sᵀ` (Cholesky), `||(W - W')X||_F = ||(W - W')S||_F`, so the best
//! rank-`r` `W'` is the truncated SVD of `W S` mapped back by `S⁻¹` — the whitening of
//! SVD-LLM (Wang et al. 2024, arXiv 2403.07378). Directions the data never excites (for
//! MNIST, the always-black border pixels) cost nothing to drop, and directions the data
//! uses heavily are kept first. A small damping `δ·mean(diag G)·I` keeps `G` invertible.

use crate::error::{LowRankError, Result, check_finite};
use crate::svd::{Truncated, truncated_svd};
use deepcompress_core::layer::Conv2dConfig;
use deepcompress_core::linalg;
use deepcompress_core::ops::{ConvGeometry, im2col, matmul, matmul_nt};
use ndarray::{Array2, ArrayView2, ArrayView4, Axis};

/// The second moment `G = Σ x xᵀ` of a layer's inputs over calibration samples (rows of
/// the Linear input, or im2col patches of the Conv2d input), accumulated in `f64`.
///
/// ```
/// use deepcompress_lowrank::whiten::InputGram;
/// use ndarray::array;
/// let g = InputGram::from_rows(array![[1.0_f32, 0.0], [1.0, 2.0]].view(), "fc1")?;
/// assert_eq!(g.gram, array![[2.0, 2.0], [2.0, 4.0]]);
/// assert_eq!(g.samples, 2);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct InputGram {
    /// `Σ x xᵀ`, `n x n`.
    pub gram: Array2<f64>,
    /// Vectors accumulated.
    pub samples: usize,
}

impl InputGram {
    /// From a Linear layer's inputs `[batch, in]`; `path` names the layer in errors.
    pub fn from_rows(x: ArrayView2<f32>, path: &str) -> Result<Self> {
        Ok(Self { gram: cross_rows(x, x, path)?, samples: x.nrows() })
    }

    /// From a Conv2d layer's inputs `[batch, channels, h, w]`: the Gram of all im2col
    /// patches (one per output position), so that the conv is treated as the matrix
    /// `[out, in*kh*kw]` it multiplies the patches by. Grouped convolutions are refused.
    pub fn from_conv_inputs(x: ArrayView4<f32>, conv: &Conv2dConfig, path: &str) -> Result<Self> {
        let (gram, samples) = cross_patches(x, x, conv, path)?;
        Ok(Self { gram, samples })
    }
}

/// `Σ x yᵀ` over matching rows of `x` and `y` (`[batch, n]` each), in `f64`.
pub(crate) fn cross_rows(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    path: &str,
) -> Result<Array2<f64>> {
    check_finite(x.iter().chain(y.iter()), path, "calibration input")?;
    if x.dim() != y.dim() {
        return Err(deepcompress_core::CoreError::shape(
            path,
            format!("{:?}", x.shape()),
            y.shape(),
        )
        .into());
    }
    Ok(matmul(x.t(), y).mapv(f64::from))
}

/// `Σ p qᵀ` over the im2col patches `p` of `x` and `q` of `y` (`[batch, c, h, w]` each,
/// the same shape), and the number of patches. Grouped convolutions are refused.
pub(crate) fn cross_patches(
    x: ArrayView4<f32>,
    y: ArrayView4<f32>,
    conv: &Conv2dConfig,
    path: &str,
) -> Result<(Array2<f64>, usize)> {
    if conv.groups != 1 {
        return Err(LowRankError::Unsupported {
            path: path.to_string(),
            kind: "Conv2d".into(),
            reason: format!("grouped convolution (groups = {})", conv.groups),
        });
    }
    check_finite(x.iter().chain(y.iter()), path, "calibration input")?;
    let (_, c, h, w) = x.dim();
    if c != conv.in_channels || x.dim() != y.dim() {
        return Err(deepcompress_core::CoreError::shape(
            path,
            format!("[batch, {}, h, w] twice", conv.in_channels),
            y.shape(),
        )
        .into());
    }
    let geo = ConvGeometry {
        channels: c,
        in_hw: (h, w),
        kernel: conv.kernel,
        stride: conv.stride,
        padding: conv.padding,
        dilation: conv.dilation,
    };
    let (oh, ow) = geo.out_hw().ok_or_else(|| {
        deepcompress_core::CoreError::shape(path, "an input the kernel fits", x.shape())
    })?;
    let n = geo.col_rows();
    let mut gram = Array2::<f64>::zeros((n, n));
    let mut p = Array2::<f32>::zeros((n, oh * ow));
    let mut q = Array2::<f32>::zeros((n, oh * ow));
    for (a, b) in x.axis_iter(Axis(0)).zip(y.axis_iter(Axis(0))) {
        im2col(a, &geo, p.view_mut());
        im2col(b, &geo, q.view_mut());
        gram += &matmul_nt(p.view(), q.view()).mapv(f64::from);
    }
    Ok((gram, x.len_of(Axis(0)) * oh * ow))
}

/// A whitening transform `S` (lower Cholesky factor of the damped Gram) and its inverse.
///
/// ```
/// use deepcompress_lowrank::whiten::{InputGram, Whitening};
/// use ndarray::array;
/// let g = InputGram { gram: array![[4.0, 0.0], [0.0, 0.0]], samples: 4 };
/// // The second input is never excited: G is singular, damping makes it invertible.
/// let w = Whitening::new(&g, 0.01, "fc1")?;
/// assert!((w.s[[0, 0]] - 2.0).abs() < 0.02 && w.s[[1, 1]] > 0.0);
/// assert!(Whitening::new(&g, -1.0, "fc1").is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Whitening {
    /// `S`, lower triangular, `S Sᵀ = G + δ·mean(diag G)·I`.
    pub s: Array2<f32>,
    /// `S⁻¹`, lower triangular.
    pub s_inv: Array2<f32>,
}

impl Whitening {
    /// Factors `G + damping·mean(diag G)·I`. `damping` must be finite and in `[0, 1]`
    /// (0.01 is a good default); a zero Gram (no signal at all) is refused.
    pub fn new(gram: &InputGram, damping: f64, path: &str) -> Result<Self> {
        if !(damping.is_finite() && (0.0..=1.0).contains(&damping)) {
            return Err(LowRankError::param("damping", damping, "must be in [0, 1]"));
        }
        let g = &gram.gram;
        let n = g.nrows();
        let mean_diag = g.diag().sum() / n.max(1) as f64;
        if !(mean_diag.is_finite() && mean_diag > 0.0) {
            return Err(LowRankError::param(
                format!("calibration inputs of `{path}`"),
                format!("{} samples", gram.samples),
                "are all zero: no output error to minimise",
            ));
        }
        let mut damped = g.clone();
        damped.diag_mut().mapv_inplace(|d| d + damping * mean_diag);
        // Scale to unit mean diagonal so f32 holds the factor well, then undo.
        let scale = mean_diag.sqrt();
        let l = linalg::cholesky(damped.mapv(|v| (v / mean_diag) as f32).view()).map_err(|e| {
            LowRankError::param(
                format!("damping for `{path}`"),
                damping,
                format!("calibration Gram is not positive definite ({e}); raise the damping"),
            )
        })?;
        let l64 = l.mapv(f64::from);
        let inv = deepcompress_core::linalg::lower_triangular_inverse(l64.view())?;
        Ok(Self { s: l64.mapv(|v| (v * scale) as f32), s_inv: inv.mapv(|v| (v / scale) as f32) })
    }
}

/// A data-aware rank-`r` factorisation `W ≈ A B` and the spectrum of `W S`.
///
/// `error()` of the inner [`Truncated`] is the output error `||(W - A B) S||_F` on the
/// (damped) calibration data, exact by Eckart–Young.
#[derive(Debug, Clone)]
pub struct Whitened {
    /// Truncated SVD of `W S`.
    pub truncated: Truncated,
    /// `m x r`.
    pub a: Array2<f32>,
    /// `r x n`.
    pub b: Array2<f32>,
}

/// Factorises `w` (`m x n`, acting on inputs of dimension `n`) at rank `rank`, minimising
/// the output error on the calibration data behind `whitening`.
///
/// ```
/// use deepcompress_lowrank::whiten::{InputGram, Whitening, whitened_svd};
/// use deepcompress_lowrank::svd::truncated_svd;
/// use ndarray::{array, Array2};
///
/// let w = array![[1.0_f32, 1.0, 0.0], [0.0, 1.0, 1.0]];
/// // Inputs only ever use the first coordinate strongly.
/// let x = array![[10.0_f32, 0.1, 0.2], [-9.0, 0.3, 0.1], [11.0, -0.2, 0.1]];
/// let wh = Whitening::new(&InputGram::from_rows(x.view(), "fc")?, 1e-6, "fc")?;
/// let ours = whitened_svd(w.view(), &wh, 1)?;
/// let plain = truncated_svd(w.view(), 1)?;
/// let out_err = |wr: Array2<f32>| (x.dot(&(&w - &wr).t())).mapv(|v| v * v).sum().sqrt();
/// let (pa, pb) = plain.factors();
/// assert!(out_err(ours.a.dot(&ours.b)) < out_err(pa.dot(&pb)));
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn whitened_svd(w: ArrayView2<f32>, whitening: &Whitening, rank: usize) -> Result<Whitened> {
    let (_, n) = w.dim();
    if whitening.s.nrows() != n {
        return Err(deepcompress_core::CoreError::shape(
            "whitened_svd weight",
            format!("[out, {}] to match the calibration inputs", whitening.s.nrows()),
            w.shape(),
        )
        .into());
    }
    let ws = matmul(w, whitening.s.view());
    let truncated = truncated_svd(ws.view(), rank)?;
    let (a, b_white) = truncated.factors();
    let b = matmul(b_white.view(), whitening.s_inv.view());
    Ok(Whitened { truncated, a, b })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn output_error_equals_dropped_whitened_spectrum() {
        // Without damping, ||(W - AB) X|| equals the Eckart–Young error of W S.
        let x = Array2::from_shape_fn((200, 6), |(i, j)| {
            (((i * 37 + j * 11) % 17) as f32 - 8.0) * (j as f32 + 1.0)
        });
        let w = Array2::from_shape_fn((5, 6), |(i, j)| ((i * 5 + j * 3) % 7) as f32 - 3.0);
        let wh = Whitening::new(&InputGram::from_rows(x.view(), "t").unwrap(), 0.0, "t").unwrap();
        let f = whitened_svd(w.view(), &wh, 2).unwrap();
        let diff = &w - &f.a.dot(&f.b);
        let out = x.dot(&diff.t()).mapv(|v| (v as f64).powi(2)).sum().sqrt();
        let want = f.truncated.error();
        assert!((out - want).abs() <= 1e-3 * want.max(1.0), "{out} vs {want}");
    }
}
