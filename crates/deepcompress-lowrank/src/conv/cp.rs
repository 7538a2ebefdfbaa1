//! CP (canonical polyadic) decomposition of a convolution kernel by alternating least
//! squares (Lebedev, Ganin, Rakhuba, Oseledets and Lempitsky 2014, "Speeding-up
//! Convolutional Neural Networks Using Fine-tuned CP-Decomposition", arXiv 1412.6553).

use super::{
    ConvFactorization, Geometry, build_conv, check_range, conv_parts, diff_norm, finish, gram,
    leading_eigvecs, norm, relative, reshape4, shape4, unfold,
};
use crate::error::{LowRankError, Result, check_finite};
use deepcompress_core::CoreError;
use deepcompress_core::layer::Conv2d;
use deepcompress_core::ops::{matmul, matmul_nt, matmul_tn};
use ndarray::{Array2, Array4, ArrayView2, ArrayView4, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of a CP-ALS decomposition.
///
/// * `rank`: number of rank-one terms `R`, in `1..=N C kh kw / max(N, C, kh, kw)` (no
///   4-way tensor needs more).
/// * `max_iters`, `tol`: ALS sweeps stop when the relative kernel error changes by less
///   than `tol`; if that has not happened after `max_iters` sweeps the decomposition fails
///   with [`LowRankError::NotConverged`], unless `allow_unconverged` is set, in which case
///   the last iterate is returned with [`Cp::converged`] false (every iterate is a valid,
///   if not optimal, factorisation).
/// * `ridge`: weight of a proximal term `ridge · tr(V)/R · ||F - F_prev||²` added to each
///   least-squares update (`V` the normal matrix). It keeps the normal equations positive
///   definite when components become collinear ("swamps"), and because each update still
///   minimises the error plus a term that is zero at the previous iterate, the kernel
///   error never increases from one sweep to the next. Plain ridge (`||F||²`) would not
///   give that guarantee.
/// * `seed`: the factors start from the leading eigenvectors of each unfolding's Gram
///   (an HOSVD); when `R` exceeds a mode's size the extra columns are uniform random
///   numbers from this seed, so the same seed gives the same bits.
///
/// ```
/// use deepcompress_lowrank::conv::CpConfig;
/// let c = CpConfig::new(16).max_iters(50).tol(1e-4).allow_unconverged(true);
/// assert_eq!((c.rank, c.max_iters, c.allow_unconverged), (16, 50, true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpConfig {
    /// Number of rank-one terms `R`.
    pub rank: usize,
    /// Maximum ALS sweeps (each updates the four factors once).
    pub max_iters: usize,
    /// Convergence threshold on the change of the relative error between sweeps.
    pub tol: f64,
    /// Relative weight of the proximal regularisation (see above).
    pub ridge: f64,
    /// Seed for the random part of the initialisation.
    pub seed: u64,
    /// Return the last iterate instead of an error when `max_iters` is reached.
    pub allow_unconverged: bool,
}

impl CpConfig {
    /// Rank `R` with 500 sweeps, `tol = 1e-5`, `ridge = 1e-5`, seed 0, and an error when
    /// not converged.
    pub fn new(rank: usize) -> Self {
        Self { rank, max_iters: 500, tol: 1e-5, ridge: 1e-5, seed: 0, allow_unconverged: false }
    }

    /// Sets the maximum number of sweeps.
    pub fn max_iters(mut self, n: usize) -> Self {
        self.max_iters = n;
        self
    }

    /// Sets the convergence tolerance.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Sets the proximal regularisation weight.
    pub fn ridge(mut self, ridge: f64) -> Self {
        self.ridge = ridge;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Accepts (`true`) or refuses (`false`, the default) a result that did not converge.
    pub fn allow_unconverged(mut self, allow: bool) -> Self {
        self.allow_unconverged = allow;
        self
    }
}

/// A CP kernel `W[n, c, y, x] ≈ Σ_r O[n, r] I[c, r] V[y, r] H[x, r]`.
///
/// Lebedev et al. (2014, arXiv 1412.6553) run it as four convolutions: a 1x1 `C -> R`
/// (`Iᵀ`), a depthwise `kh x 1` (`V`), a depthwise `1 x kw` (`H`) and a 1x1 `R -> N` (`O`).
/// The cost is `R (C + kh + kw + N)` weights instead of `N C kh kw`, the largest saving of
/// the three decompositions, but CP fits are harder (ALS converges slowly and the
/// accuracy drop before fine-tuning is larger): use it when the layer will be fine-tuned.
/// The columns are balanced (the four parts of a term have equal norms) and sorted by
/// decreasing weight.
///
/// ```
/// use deepcompress_lowrank::conv::{CpConfig, cp};
/// use ndarray::Array4;
///
/// // A sum of two rank-one terms is recovered exactly.
/// let w = Array4::from_shape_fn((5, 4, 3, 3), |(n, c, y, x)| {
///     let (n, c, y, x) = (n as f32, c as f32, y as f32, x as f32);
///     (n + 1.0) * (c - 1.5) * (y + 0.5) * (x - 1.0) + (n - 2.0) * (c + 1.0) * (2.0 - y) * (x + 1.0)
/// });
/// let f = cp(w.view(), &CpConfig::new(2).tol(1e-9).allow_unconverged(true))?;
/// assert_eq!(f.out_factor.dim(), (5, 2));
/// assert!(f.relative_error < 1e-3);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cp {
    /// `O`, `[N, R]`.
    pub out_factor: Array2<f32>,
    /// `I`, `[C, R]`.
    pub in_factor: Array2<f32>,
    /// `V`, `[kh, R]`.
    pub vertical: Array2<f32>,
    /// `H`, `[kw, R]`.
    pub horizontal: Array2<f32>,
    /// Relative kernel error after each sweep (non-increasing up to rounding).
    pub error_history: Vec<f64>,
    /// Whether the tolerance was met.
    pub converged: bool,
    /// `||W - W_approx||_F`.
    pub kernel_error: f64,
    /// `kernel_error / ||W||_F` (0 for a zero kernel).
    pub relative_error: f64,
}

impl Cp {
    /// The rank `R`.
    pub fn rank(&self) -> usize {
        self.out_factor.ncols()
    }

    /// Sweeps run.
    pub fn iterations(&self) -> usize {
        self.error_history.len()
    }

    /// The approximated kernel `[N, C, kh, kw]`.
    pub fn reconstruct(&self) -> Array4<f32> {
        let (n, c, kh, kw) = (
            self.out_factor.nrows(),
            self.in_factor.nrows(),
            self.vertical.nrows(),
            self.horizontal.nrows(),
        );
        let kr = khatri_rao(&[self.in_factor.view(), self.vertical.view(), self.horizontal.view()]);
        matmul_nt(self.out_factor.view(), kr.view())
            .into_shape_with_order((n, c, kh, kw))
            .expect("standard")
    }
}

/// CP decomposition of a kernel `[N, C, kh, kw]` by ALS (Lebedev et al. 2014,
/// arXiv 1412.6553); see [`Cp`] and [`CpConfig`].
///
/// Errors: bad settings ([`LowRankError::InvalidParam`]), NaN or infinity in the kernel,
/// [`LowRankError::NotConverged`] as described in [`CpConfig`].
///
/// ```
/// use deepcompress_lowrank::{LowRankError, conv::{CpConfig, cp}};
/// use ndarray::Array4;
/// let w = Array4::from_shape_fn((6, 6, 3, 3), |(n, c, y, x)| ((n * 5 + c * 3 + y * 7 + x) % 9) as f32);
/// let err = cp(w.view(), &CpConfig::new(4).max_iters(2).tol(0.0)).unwrap_err();
/// assert!(matches!(err, LowRankError::NotConverged { iterations: 2, .. }));
/// assert!(cp(w.view(), &CpConfig::new(0)).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn cp(weight: ArrayView4<f32>, config: &CpConfig) -> Result<Cp> {
    cp_at("cp", weight, config)
}

fn cp_at(path: &str, w: ArrayView4<f32>, config: &CpConfig) -> Result<Cp> {
    let dims = shape4(w);
    let [_, c, kh, kw] = dims;
    let r = config.rank;
    let max_rank = dims.iter().product::<usize>() / dims.iter().max().copied().unwrap_or(1).max(1);
    check_range("rank", r, max_rank, "product of all kernel sizes but the largest", path, w)?;
    if config.max_iters == 0 {
        return Err(LowRankError::param("max_iters", 0, "must be at least 1"));
    }
    for (name, v) in [("tol", config.tol), ("ridge", config.ridge)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(LowRankError::param(name, v, "must be finite and >= 0"));
        }
    }
    check_finite(w.iter(), path, "weight")?;
    let k = kh * kw;
    let w0 = unfold(w, 0); // [N, (C, kh, kw)]
    let w1 = unfold(w, 1); // [C, (N, kh, kw)]
    let total = norm(w0.iter());

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut f = Vec::with_capacity(4);
    for (mode, &size) in dims.iter().enumerate() {
        f.push(initial_factor(w, mode, size, r, &mut rng)?);
    }
    let [mut a, mut b, mut v, mut h]: [Array2<f32>; 4] = f.try_into().expect("one factor per mode");

    let mut history = Vec::new();
    let mut converged = false;
    let mut kr_a = khatri_rao(&[b.view(), v.view(), h.view()]);
    // Each factor's Gram in f64, refreshed when the factor changes.
    let mut grams = [gram64(&a), gram64(&b), gram64(&v), gram64(&h)];
    for _ in 0..config.max_iters {
        // Output channels: W₀ · (I ⊙ V ⊙ H).
        let m = matmul(w0.view(), kr_a.view());
        a = update(&m, &a, &[&grams[1], &grams[2], &grams[3]], config.ridge, path)?;
        grams[0] = gram64(&a);
        // Input channels: W₁ · (O ⊙ V ⊙ H).
        let m = matmul(w1.view(), khatri_rao(&[a.view(), v.view(), h.view()]).view());
        b = update(&m, &b, &[&grams[0], &grams[2], &grams[3]], config.ridge, path)?;
        grams[1] = gram64(&b);
        // Spatial modes are tiny: contract the channel modes once, Q[r, y, x] =
        // Σ_{n,c} O[n,r] I[c,r] W[n,c,y,x], then each spatial MTTKRP is a small sum.
        let p = matmul_tn(a.view(), w0.view()).into_shape_with_order((r, c, k)).expect("standard");
        let q = Array2::from_shape_fn((r, k), |(i, yx)| {
            (0..c).map(|ci| p[[i, ci, yx]] * b[[ci, i]]).sum::<f32>()
        });
        let q = q.into_shape_with_order((r, kh, kw)).expect("standard");
        let m = Array2::from_shape_fn((kh, r), |(y, i)| {
            (0..kw).map(|x| q[[i, y, x]] * h[[x, i]]).sum::<f32>()
        });
        v = update(&m, &v, &[&grams[0], &grams[1], &grams[3]], config.ridge, path)?;
        grams[2] = gram64(&v);
        let m = Array2::from_shape_fn((kw, r), |(x, i)| {
            (0..kh).map(|y| q[[i, y, x]] * v[[y, i]]).sum::<f32>()
        });
        h = update(&m, &h, &[&grams[0], &grams[1], &grams[2]], config.ridge, path)?;
        grams[3] = gram64(&h);

        // Exact error from the reconstruction; its Khatri–Rao product is the next sweep's.
        kr_a = khatri_rao(&[b.view(), v.view(), h.view()]);
        let approx = matmul_nt(a.view(), kr_a.view());
        let err = relative(diff_norm(w0.iter(), approx.iter()), total);
        let change = history.last().map_or(f64::INFINITY, |&p: &f64| (p - err).abs());
        history.push(err);
        if change < config.tol || err == 0.0 {
            converged = true;
            break;
        }
    }
    if !converged && !config.allow_unconverged {
        let change = match history.as_slice() {
            [.., p, q] => (p - q).abs(),
            _ => f64::INFINITY,
        };
        return Err(LowRankError::NotConverged {
            method: "CP-ALS",
            iterations: history.len(),
            change,
        });
    }
    let [a, b, v, h] = balance([a, b, v, h]);
    let err = history.last().copied().unwrap_or(0.0);
    Ok(Cp {
        out_factor: a,
        in_factor: b,
        vertical: v,
        horizontal: h,
        error_history: history,
        converged,
        kernel_error: err * total,
        relative_error: err,
    })
}

/// HOSVD start for one mode: leading eigenvectors of the unfolding's Gram, then seeded
/// uniform columns when the rank exceeds the mode size.
fn initial_factor(
    w: ArrayView4<f32>,
    mode: usize,
    size: usize,
    r: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Array2<f32>> {
    let unf = unfold(w, mode);
    let lead = r.min(size);
    let (vecs, _) = leading_eigvecs(gram(unf.view()).view(), lead)?;
    let mut f = Array2::<f32>::zeros((size, r));
    f.slice_mut(ndarray::s![.., ..lead]).assign(&vecs);
    let scale = 1.0 / (size as f32).sqrt();
    for j in lead..r {
        for i in 0..size {
            f[[i, j]] = rng.random_range(-1.0_f32..1.0) * scale;
        }
    }
    Ok(f)
}

/// `Fᵀ F` in `f64`.
fn gram64(f: &Array2<f32>) -> Array2<f64> {
    let f = f.mapv(f64::from);
    f.t().dot(&f)
}

/// One proximal least-squares update: `F = (M + λ F_prev) (V + λ I)⁻¹` with
/// `V = ⊙ Fⱼᵀ Fⱼ` over the other factors (their Grams given) and `λ = ridge · tr(V) / R`,
/// solved in `f64`.
fn update(
    m: &Array2<f32>,
    prev: &Array2<f32>,
    other_grams: &[&Array2<f64>],
    ridge: f64,
    path: &str,
) -> Result<Array2<f32>> {
    let r = prev.ncols();
    let mut gram = Array2::<f64>::ones((r, r));
    for g in other_grams {
        gram *= *g;
    }
    let trace = gram.diag().sum();
    let lambda = if trace > 0.0 { ridge * trace / r as f64 } else { ridge };
    for i in 0..r {
        gram[[i, i]] += lambda;
    }
    // (V + λI) Fᵀ = (M + λ F_prev)ᵀ, V symmetric.
    let rhs = (m.mapv(f64::from) + prev.mapv(f64::from) * lambda).reversed_axes();
    let x = cholesky_solve(gram, rhs).ok_or_else(|| {
        LowRankError::Core(CoreError::Linalg {
            op: "CP-ALS",
            reason: format!(
                "normal equations of `{path}` are singular (ridge = {ridge}); use a positive ridge"
            ),
        })
    })?;
    Ok(x.reversed_axes().mapv(|v| v as f32))
}

/// Solves `A X = B` for symmetric positive definite `A` by Cholesky; `None` if `A` is not
/// numerically positive definite.
fn cholesky_solve(mut a: Array2<f64>, mut b: Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    // In-place lower Cholesky factor.
    for j in 0..n {
        let d = a[[j, j]] - (0..j).map(|k| a[[j, k]] * a[[j, k]]).sum::<f64>();
        if d.is_nan() || d <= 0.0 {
            return None;
        }
        let d = d.sqrt();
        a[[j, j]] = d;
        for i in j + 1..n {
            let s = a[[i, j]] - (0..j).map(|k| a[[i, k]] * a[[j, k]]).sum::<f64>();
            a[[i, j]] = s / d;
        }
    }
    // Forward (L y = b) and backward (Lᵀ x = y) substitution, all columns at once.
    for i in 0..n {
        for k in 0..i {
            let l = a[[i, k]];
            let (head, mut tail) = b.view_mut().split_at(Axis(0), i);
            tail.row_mut(0).scaled_add(-l, &head.row(k));
        }
        let d = a[[i, i]];
        b.row_mut(i).mapv_inplace(|v| v / d);
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            let l = a[[k, i]];
            let (mut head, tail) = b.view_mut().split_at(Axis(0), i + 1);
            head.row_mut(i).scaled_add(-l, &tail.row(k - i - 1));
        }
        let d = a[[i, i]];
        b.row_mut(i).mapv_inplace(|v| v / d);
    }
    b.iter().all(|v| v.is_finite()).then_some(b)
}

/// Column-wise Khatri–Rao product `F₁ ⊙ F₂ ⊙ …`: row `(i₁, i₂, …)` (last fastest), column
/// `r` is `Π F_j[i_j, r]`.
fn khatri_rao(factors: &[ArrayView2<f32>]) -> Array2<f32> {
    let r = factors[0].ncols();
    let mut out = factors[0].to_owned();
    for f in &factors[1..] {
        let (rows, j) = (out.nrows(), f.nrows());
        let mut next = Array2::<f32>::zeros((rows * j, r));
        for (i, row) in out.outer_iter().enumerate() {
            let mut block = next.slice_mut(ndarray::s![i * j..(i + 1) * j, ..]);
            block.assign(f);
            block *= &row;
        }
        out = next;
    }
    out
}

/// Gives the four parts of each term the same norm, and sorts the terms by weight.
fn balance(f: [Array2<f32>; 4]) -> [Array2<f32>; 4] {
    let r = f[0].ncols();
    let norms: Vec<[f64; 4]> =
        (0..r).map(|j| std::array::from_fn(|m| norm(f[m].column(j).iter()))).collect();
    let weight = |j: usize| norms[j].iter().product::<f64>();
    let mut order: Vec<usize> = (0..r).collect();
    order.sort_by(|&x, &y| weight(y).total_cmp(&weight(x)));
    std::array::from_fn(|m| {
        let mut out = Array2::<f32>::zeros(f[m].dim());
        for (dst, &src) in order.iter().enumerate() {
            let share = weight(src).powf(0.25);
            let own = norms[src][m];
            let scale = if own > 0.0 { (share / own) as f32 } else { 0.0 };
            out.column_mut(dst).assign(&(&f[m].column(src) * scale));
        }
        out
    })
}

/// Replaces a convolution by the CP chain of Lebedev et al. (2014, arXiv 1412.6553): a 1x1
/// convolution `C -> R`, a depthwise `kh x 1` convolution (axis-0 stride, padding and
/// dilation), a depthwise `1 x kw` convolution (axis 1), and a 1x1 convolution `R -> N`
/// with the bias.
///
/// Errors: a grouped convolution ([`Unsupported`](crate::LowRankError::Unsupported)),
/// bad settings, NaN or infinity in the weight or bias (each naming `path`), and
/// [`LowRankError::NotConverged`] as described in [`CpConfig`].
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_lowrank::conv::{CpConfig, cp_conv};
/// let conv = Conv2d::new(Conv2dConfig::new(16, 32, 3).padding(1), 0)?;
/// let f = cp_conv("features.3", &conv, &CpConfig::new(8).allow_unconverged(true))?;
/// assert_eq!(f.layers.len(), 4);
/// assert_eq!(f.layers[1].config.groups, 8);
/// assert_eq!(f.params_after, 8 * (16 + 3 + 3 + 32) + 32);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn cp_conv(path: &str, conv: &Conv2d, config: &CpConfig) -> Result<ConvFactorization> {
    let (w, bias) = conv_parts(path, conv)?;
    let f = cp_at(path, w.view(), config)?;
    let r = f.rank();
    let c = &conv.config;
    let (kh, kw) = c.kernel;
    let first_w = reshape4(f.in_factor.t(), (r, c.in_channels, 1, 1));
    let vert_w = reshape4(f.vertical.t(), (r, 1, kh, 1));
    let horiz_w = reshape4(f.horizontal.t(), (r, 1, 1, kw));
    let last_w = reshape4(f.out_factor.view(), (c.out_channels, r, 1, 1));
    let layers = vec![
        build_conv(Geometry::pointwise(), c.in_channels, first_w, None)?,
        build_conv(Geometry::vertical(c, r), r, vert_w, None)?,
        build_conv(Geometry::horizontal(c, r), r, horiz_w, None)?,
        build_conv(Geometry::pointwise(), r, last_w, bias)?,
    ];
    Ok(finish("cp", conv, layers, vec![r], f.kernel_error, norm(w.iter())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_solve_matches_known_system() {
        let a = ndarray::array![[4.0, 2.0, 0.0], [2.0, 5.0, 1.0], [0.0, 1.0, 3.0]];
        let x = ndarray::array![[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]];
        let b = a.dot(&x);
        let got = cholesky_solve(a, b).unwrap();
        assert!((&got - &x).iter().all(|d| d.abs() < 1e-12), "{got}");
        assert!(
            cholesky_solve(ndarray::array![[1.0, 2.0], [2.0, 1.0]], Array2::ones((2, 1))).is_none()
        );
    }

    #[test]
    fn khatri_rao_orders_rows_last_fastest() {
        let p = ndarray::array![[1.0_f32, 2.0], [3.0, 4.0]];
        let q = ndarray::array![[5.0_f32, 6.0], [7.0, 8.0], [9.0, 10.0]];
        let kr = khatri_rao(&[p.view(), q.view()]);
        assert_eq!(kr.dim(), (6, 2));
        assert_eq!(kr.row(4).to_vec(), vec![3.0 * 7.0, 4.0 * 8.0]);
    }

    #[test]
    fn balance_keeps_the_product_and_equalises_norms() {
        let f = [
            ndarray::array![[2.0_f32, 0.1], [0.0, 0.0]],
            ndarray::array![[1.0_f32, 1.0]],
            ndarray::array![[8.0_f32, 1.0]],
            ndarray::array![[0.5_f32, 1.0]],
        ];
        let out = balance(f);
        // Term 0 has weight 2*1*8*0.5 = 8 and stays first; each part gets norm 8^(1/4).
        let expect = 8f32.powf(0.25);
        for m in &out {
            assert!((m[[0, 0]].abs() - expect).abs() < 1e-5 || m.nrows() == 2);
        }
        let prod: f32 = out.iter().map(|m| m[[0, 0]]).product();
        assert!((prod - 8.0).abs() < 1e-4);
        assert!(
            (out[0][[0, 1]] * out[1][[0, 1]] * out[2][[0, 1]] * out[3][[0, 1]] - 0.1).abs() < 1e-6
        );
    }
}
