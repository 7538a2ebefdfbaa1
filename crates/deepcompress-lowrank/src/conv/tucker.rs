//! Tucker-2 decomposition of a convolution kernel (Kim, Park, Yoo, Choi, Yang and Shin 2015,
//! "Compression of Deep Convolutional Neural Networks for Fast and Low Power Mobile
//! Applications", arXiv 1511.06530).

use super::{
    ConvFactorization, Geometry, build_conv, check_range, conv_parts, diff_norm, finish, gram,
    leading_eigvecs, norm, relative, reshape4, shape4, unfold,
};
use crate::error::{LowRankError, Result, check_finite};
use deepcompress_core::layer::Conv2d;
use deepcompress_core::ops::{matmul, matmul_tn};
use ndarray::{Array2, Array4, ArrayView2, ArrayView4};

/// Ranks and HOOI settings of a Tucker-2 decomposition.
///
/// The factors start from the HOSVD (leading eigenvectors of the Grams of the mode-0 and
/// mode-1 unfoldings) and are refined by up to `max_iters` HOOI sweeps, which stop early
/// when the relative error changes by less than `tol` from one sweep to the next.
/// `max_iters = 0` keeps the HOSVD. The defaults (100 sweeps, `tol = 1e-4`) match
/// TensorLy's `tucker`.
///
/// ```
/// use deepcompress_lowrank::conv::Tucker2Config;
/// let c = Tucker2Config::new(64, 32).max_iters(5).tol(1e-6);
/// assert_eq!((c.ranks, c.max_iters, c.tol), ((64, 32), 5, 1e-6));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tucker2Config {
    /// `(r_out, r_in)`: ranks of the output-channel and input-channel modes.
    pub ranks: (usize, usize),
    /// Maximum HOOI sweeps after the HOSVD (0: HOSVD only).
    pub max_iters: usize,
    /// Stop when the relative kernel error changes by less than this.
    pub tol: f64,
}

impl Tucker2Config {
    /// Ranks `(r_out, r_in)` with the default HOOI settings.
    pub fn new(r_out: usize, r_in: usize) -> Self {
        Self { ranks: (r_out, r_in), max_iters: 100, tol: 1e-4 }
    }

    /// The largest channel ranks `(⌈αN⌉, ⌈αC⌉)`, one factor `α` for both, whose three
    /// layers hold at most `fraction` of the `N C kh kw` weights of a kernel of `shape`
    /// `(N, C, kh, kw)`; at least `(1, 1)`. `fraction` is clamped to `[0, 1]`.
    ///
    /// ```
    /// use deepcompress_lowrank::conv::Tucker2Config;
    /// let c = Tucker2Config::for_fraction(0.25, (50, 20, 5, 5));
    /// let (ro, ri) = c.ranks;
    /// assert!(20 * ri + ri * ro * 25 + ro * 50 <= 25_000 / 4);
    /// ```
    pub fn for_fraction(fraction: f64, (n, c, kh, kw): (usize, usize, usize, usize)) -> Self {
        let ranks = |a: f64| {
            (
                ((a * n as f64).ceil() as usize).clamp(1, n),
                ((a * c as f64).ceil() as usize).clamp(1, c),
            )
        };
        let params = |(ro, ri): (usize, usize)| (c * ri + ri * ro * kh * kw + ro * n) as f64;
        let budget = fraction.clamp(0.0, 1.0) * (n * c * kh * kw) as f64;
        let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
        // Bisection on α: the parameter count only grows with it.
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if params(ranks(mid)) <= budget { lo = mid } else { hi = mid }
        }
        let (r_out, r_in) = ranks(lo);
        Self::new(r_out, r_in)
    }

    /// Sets the maximum number of HOOI sweeps.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }

    /// Sets the convergence tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }
}

/// A Tucker-2 kernel `W[n, c, y, x] ≈ Σ_{a,b} U_out[n, a] G[a, b, y, x] U_in[c, b]`.
///
/// Kim et al. (2015, arXiv 1511.06530) turn it into three convolutions: a 1x1 `C -> r_in`
/// (`U_inᵀ`), the `kh x kw` core `r_in -> r_out` with the original stride, padding and
/// dilation, and a 1x1 `r_out -> N` (`U_out`). Use it for layers with many channels (3x3
/// layers of VGG and ResNet): the cost falls roughly by `r_out r_in / (N C)`. The factors
/// have orthonormal columns, so the core carries the scale.
///
/// ```
/// use deepcompress_lowrank::conv::{Tucker2Config, tucker2};
/// use ndarray::Array4;
///
/// let w = Array4::from_shape_fn((8, 6, 3, 3), |(n, c, y, x)| ((n * 5 + c * 3 + y * 7 + x) % 9) as f32);
/// let t = tucker2(w.view(), &Tucker2Config::new(4, 3))?;
/// assert_eq!((t.out_factor.dim(), t.in_factor.dim(), t.core.dim()), ((8, 4), (6, 3), (4, 3, 3, 3)));
/// // Full ranks reconstruct the kernel.
/// let full = tucker2(w.view(), &Tucker2Config::new(8, 6))?;
/// assert!(full.relative_error < 1e-5);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Tucker2 {
    /// `U_out`, `[N, r_out]`, orthonormal columns.
    pub out_factor: Array2<f32>,
    /// `U_in`, `[C, r_in]`, orthonormal columns.
    pub in_factor: Array2<f32>,
    /// Core `G`, `[r_out, r_in, kh, kw]`.
    pub core: Array4<f32>,
    /// Relative kernel error after the HOSVD and after each HOOI sweep (non-increasing up
    /// to rounding).
    pub error_history: Vec<f64>,
    /// Whether HOOI stopped by the tolerance (true also for `max_iters = 0`).
    pub converged: bool,
    /// `||W - W_approx||_F` of the returned factors.
    pub kernel_error: f64,
    /// `kernel_error / ||W||_F` (0 for a zero kernel).
    pub relative_error: f64,
}

impl Tucker2 {
    /// `(r_out, r_in)`.
    pub fn ranks(&self) -> (usize, usize) {
        (self.out_factor.ncols(), self.in_factor.ncols())
    }

    /// The approximated kernel `[N, C, kh, kw]`.
    pub fn reconstruct(&self) -> Array4<f32> {
        reconstruct(self.out_factor.view(), self.core.view(), self.in_factor.view())
    }
}

/// `U_out ×₀ (G ×₁ U_in)` as `[N, C, kh, kw]`.
fn reconstruct(
    u_out: ArrayView2<f32>,
    core: ArrayView4<f32>,
    u_in: ArrayView2<f32>,
) -> Array4<f32> {
    let (_, _, kh, kw) = core.dim();
    let (n, c) = (u_out.nrows(), u_in.nrows());
    let w0 = reconstruct_unfolded(u_out, unfold(core, 1).view(), u_in, kh * kw);
    w0.into_shape_with_order((n, c, kh, kw)).expect("standard")
}

/// The mode-0 unfolding `[N, (C, k)]` of `U_out ×₀ (G ×₁ U_in)` from the core's mode-1
/// unfolding `G₁` (`[r_in, (r_out, k)]`).
fn reconstruct_unfolded(
    u_out: ArrayView2<f32>,
    g1: ArrayView2<f32>,
    u_in: ArrayView2<f32>,
    k: usize,
) -> Array2<f32> {
    let (ro, c) = (u_out.ncols(), u_in.nrows());
    // U_in G₁ is [C, (r_out, k)]; regroup as [r_out, (C, k)] for the mode-0 product.
    let t = matmul(u_in, g1).into_shape_with_order((c, ro, k)).expect("standard");
    let t0 = t.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
    let t0 = t0.into_shape_with_order((ro, c * k)).expect("standard");
    matmul(u_out, t0.view())
}

/// Tucker-2 decomposition of a kernel `[N, C, kh, kw]` by HOSVD and HOOI (Kim et al. 2015,
/// arXiv 1511.06530); see [`Tucker2`] and [`Tucker2Config`].
///
/// The products with the unfoldings are GEMMs and the factors come from symmetric
/// eigendecompositions of `N x N` and `C x C` Grams, so a 256x256x3x3 kernel takes a few
/// tens of milliseconds.
///
/// Errors: `r_out` outside `1..=N`, `r_in` outside `1..=C`, a negative or non-finite `tol`,
/// NaN or infinity in the kernel.
///
/// ```
/// use deepcompress_lowrank::conv::{Tucker2Config, tucker2};
/// use ndarray::Array4;
/// let w = Array4::<f32>::ones((4, 4, 3, 3));
/// assert!(tucker2(w.view(), &Tucker2Config::new(5, 1)).is_err());
/// let t = tucker2(w.view(), &Tucker2Config::new(1, 1))?; // rank one
/// assert!(t.kernel_error < 1e-4);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn tucker2(weight: ArrayView4<f32>, config: &Tucker2Config) -> Result<Tucker2> {
    tucker2_at("tucker2", weight, config)
}

fn tucker2_at(path: &str, w: ArrayView4<f32>, config: &Tucker2Config) -> Result<Tucker2> {
    let [n, c, kh, kw] = shape4(w);
    let (ro, ri) = config.ranks;
    check_range("r_out", ro, n, "output channels N", path, w)?;
    check_range("r_in", ri, c, "input channels C", path, w)?;
    if !(config.tol.is_finite() && config.tol >= 0.0) {
        return Err(LowRankError::param("tol", config.tol, "must be finite and >= 0"));
    }
    check_finite(w.iter(), path, "weight")?;
    let k = kh * kw;
    let w0 = unfold(w, 0); // [N, (C, k)]
    let w1 = unfold(w, 1); // [C, (N, k)]
    let total = norm(w0.iter());
    // Measured on the reconstruction, not by ||W||² - ||G||²: that difference cancels
    // to noise of about 3e-4 relative when the error is small, which would defeat `tol`.
    let rel_err = |u_out: &Array2<f32>, core: &Array2<f32>, u_in: &Array2<f32>| {
        let approx = reconstruct_unfolded(u_out.view(), core.view(), u_in.view(), k);
        relative(diff_norm(w0.iter(), approx.iter()), total)
    };

    // HOSVD: leading eigenvectors of the two unfolding Grams.
    let (mut u_out, _) = leading_eigvecs(gram(w0.view()).view(), ro)?;
    let (mut u_in, _) = leading_eigvecs(gram(w1.view()).view(), ri)?;
    let mut core = matmul_tn(u_in.view(), project_out(&w0, u_out.view(), (c, k)).view());
    let mut history = vec![rel_err(&u_out, &core, &u_in)];
    let mut converged = true;

    if config.max_iters > 0 {
        converged = false;
        for _ in 0..config.max_iters {
            // U_out: leading left singular vectors of (W ×₁ U_inᵀ) unfolded along mode 0.
            let y = matmul_tn(u_in.view(), w1.view()).into_shape_with_order((ri, n, k));
            let y0 =
                y.expect("standard").permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
            let y0 = y0.into_shape_with_order((n, ri * k)).expect("standard");
            u_out = leading_eigvecs(gram(y0.view()).view(), ro)?.0;
            // U_in: the same along mode 1 of W ×₀ U_outᵀ.
            let z1 = project_out(&w0, u_out.view(), (c, k));
            u_in = leading_eigvecs(gram(z1.view()).view(), ri)?.0;
            core = matmul_tn(u_in.view(), z1.view());
            let err = rel_err(&u_out, &core, &u_in);
            let change = (history[history.len() - 1] - err).abs();
            history.push(err);
            if change < config.tol {
                converged = true;
                break;
            }
        }
    }
    // core is [r_in, (r_out, k)]; the layer wants [r_out, r_in, kh, kw].
    let core = core
        .into_shape_with_order((ri, ro, kh, kw))
        .expect("standard")
        .permuted_axes([1, 0, 2, 3])
        .as_standard_layout()
        .into_owned();
    let kernel_error = history[history.len() - 1] * total;
    Ok(Tucker2 {
        out_factor: u_out,
        in_factor: u_in,
        core,
        error_history: history,
        converged,
        kernel_error,
        relative_error: relative(kernel_error, total),
    })
}

/// `Z₁`, the mode-1 unfolding `[C, (r_out, k)]` of `W ×₀ U_outᵀ`; the core unfolded as
/// `[r_in, (r_out, k)]` is then `U_inᵀ Z₁`.
fn project_out(w0: &Array2<f32>, u_out: ArrayView2<f32>, (c, k): (usize, usize)) -> Array2<f32> {
    let ro = u_out.ncols();
    let z = matmul_tn(u_out, w0.view()).into_shape_with_order((ro, c, k)).expect("standard");
    let z1 = z.permuted_axes([1, 0, 2]).as_standard_layout().into_owned();
    z1.into_shape_with_order((c, ro * k)).expect("standard")
}

/// Replaces a convolution by the Tucker-2 chain of Kim et al. (2015, arXiv 1511.06530):
/// a 1x1 convolution `C -> r_in`, the `kh x kw` core `r_in -> r_out` with the original
/// stride, padding and dilation, and a 1x1 convolution `r_out -> N` with the bias.
///
/// Kim et al. pick the ranks by VBMF on the two unfoldings:
/// [`vbmf_tucker_ranks`](crate::rank::vbmf_tucker_ranks) does that.
///
/// Errors: a grouped convolution ([`Unsupported`](crate::LowRankError::Unsupported)),
/// ranks out of range, NaN or infinity in the weight or bias; each names `path`.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_lowrank::conv::{Tucker2Config, tucker2_conv};
/// let conv = Conv2d::new(Conv2dConfig::new(64, 64, 3).stride(2).padding(1), 0)?;
/// let f = tucker2_conv("layer2.0.conv1", &conv, &Tucker2Config::new(16, 16))?;
/// assert_eq!(f.ranks, vec![16, 16]);
/// assert_eq!(f.layers[1].config.stride, (2, 2));
/// assert!(f.compression_ratio() > 8.0);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn tucker2_conv(
    path: &str,
    conv: &Conv2d,
    config: &Tucker2Config,
) -> Result<ConvFactorization> {
    let (w, bias) = conv_parts(path, conv)?;
    let t = tucker2_at(path, w.view(), config)?;
    let (ro, ri) = t.ranks();
    let c = &conv.config;
    let total = norm(w.iter());
    let first_w = reshape4(t.in_factor.t(), (ri, c.in_channels, 1, 1));
    let first = build_conv(Geometry::pointwise(), c.in_channels, first_w, None)?;
    let middle = build_conv(Geometry::same_as(c), ri, t.core.clone(), None)?;
    let last_w = reshape4(t.out_factor.view(), (c.out_channels, ro, 1, 1));
    let last = build_conv(Geometry::pointwise(), ro, last_w, bias)?;
    Ok(finish("tucker2", conv, vec![first, middle, last], vec![ro, ri], t.kernel_error, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(shape: (usize, usize, usize, usize)) -> Array4<f32> {
        Array4::from_shape_fn(shape, |(n, c, y, x)| {
            (((n * 131 + c * 71 + y * 29 + x * 17) % 97) as f32 / 48.0 - 1.0).sin()
        })
    }

    #[test]
    fn hooi_error_never_increases_and_matches_the_orthogonal_identity() {
        let w = kernel((12, 10, 3, 3));
        let t = tucker2(w.view(), &Tucker2Config::new(4, 3).tol(0.0).max_iters(15)).unwrap();
        assert!(t.error_history.len() == 16 && !t.converged);
        for p in t.error_history.windows(2) {
            assert!(p[1] <= p[0] + 1e-6, "{:?}", t.error_history);
        }
        // Orthonormal factors: ||W - W_approx||² = ||W||² - ||G||².
        let (wn, gn) = (norm(w.iter()), norm(t.core.iter()));
        let identity = (wn * wn - gn * gn).sqrt();
        assert!((identity - t.kernel_error).abs() < 1e-3 * wn, "{identity} vs {}", t.kernel_error);
        let direct = diff_norm(w.iter(), t.reconstruct().iter());
        assert!((direct - t.kernel_error).abs() < 1e-5 * wn);
    }

    #[test]
    fn factors_are_orthonormal() {
        let t = tucker2(kernel((9, 7, 3, 3)).view(), &Tucker2Config::new(5, 4)).unwrap();
        for u in [&t.out_factor, &t.in_factor] {
            let g = u.t().dot(u) - Array2::<f32>::eye(u.ncols());
            assert!(g.iter().all(|d| d.abs() < 1e-5));
        }
    }
}
