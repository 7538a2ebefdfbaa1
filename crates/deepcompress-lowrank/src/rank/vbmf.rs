//! Empirical variational Bayesian matrix factorisation (EVBMF) rank estimation
//! (Nakajima, Sugiyama, Babacan and Tomioka 2013, "Global analytic solution of
//! fully-observed variational Bayesian matrix factorization", JMLR 14).
//!
//! For an `L x M` matrix (`L <= M`, transpose otherwise) observed with Gaussian noise of
//! variance `σ²`, the EVB solution keeps exactly the singular values above
//! `γ_EVB = σ sqrt(M (1 + τ̄)(1 + α/τ̄))`, `α = L/M`, where `τ̄` is the zero of
//! `Φ(τ) + Φ(τ/α)`, `Φ(z) = ln(z + 1)/z - 1/2`. The noise variance is itself estimated
//! by minimising the free energy, which depends on the data only through the singular
//! values: with `x_h = γ_h² / (M σ²)`,
//!
//! `F(σ²) = Σ_h (x_h + ln σ²) + Σ_{x_h > x̄} [ln(τ_h + 1) + α ln(τ_h/α + 1) - τ_h]`
//!
//! up to constants, where `x̄ = (1 + τ̄)(1 + α/τ̄)` and
//! `τ_h = ½ (x_h - 1 - α + sqrt((x_h - 1 - α)² - 4α))`. The minimiser lies between the
//! bounds of the paper's noise-estimation theorem; `F` is not convex there (each component
//! switching on adds a kink), so a log-spaced grid locates the global basin and
//! golden-section search refines it.

use crate::error::{LowRankError, Result, check_finite};
use deepcompress_core::linalg;
use ndarray::{ArrayView2, ArrayView4};

/// Result of an EVBMF rank estimate.
///
/// ```
/// use deepcompress_lowrank::rank::vbmf_from_spectrum;
/// // Three strong components over a flat noise floor.
/// let mut s = vec![60.0_f32, 50.0, 40.0];
/// s.extend(std::iter::repeat(1.0).take(37));
/// let v = vbmf_from_spectrum(&s, (40, 60))?;
/// assert_eq!(v.rank, 3);
/// assert!(v.threshold > 1.0 && v.threshold < 40.0);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Vbmf {
    /// Number of singular values above the EVB threshold.
    pub rank: usize,
    /// Estimated noise variance `σ²` per entry.
    pub sigma2: f64,
    /// The EVB threshold `γ_EVB` on singular values for that `σ²`.
    pub threshold: f64,
}

/// EVBMF rank of a matrix (Nakajima et al. 2013, JMLR 14): the number of components that
/// stand out from Gaussian noise of an estimated variance. Use it to choose ranks without
/// a hyper-parameter, as Kim et al. (2015, arXiv 1511.06530) do for Tucker-2; it assumes
/// the residual looks like i.i.d. noise, so on trained weights it tends to give moderate,
/// conservative ranks.
///
/// Errors: an empty matrix, NaN or infinity.
///
/// ```
/// use deepcompress_lowrank::rank::vbmf;
/// use ndarray::Array2;
/// use rand::{Rng, SeedableRng};
/// // A rank-2 matrix plus i.i.d. uniform noise.
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
/// let a = Array2::from_shape_fn((60, 40), |(i, j)| {
///     ((i % 3) as f32 - 1.0) * ((j % 4) as f32 - 1.5) + ((i * j) % 2) as f32
///         + rng.random_range(-0.2..0.2)
/// });
/// assert_eq!(vbmf(a.view())?.rank, 2);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn vbmf(matrix: ArrayView2<f32>) -> Result<Vbmf> {
    let (l, m) = matrix.dim();
    if l == 0 || m == 0 {
        return Err(LowRankError::param("matrix", format!("{l}x{m}"), "must be non-empty"));
    }
    check_finite(matrix.iter(), "vbmf", "matrix entry")?;
    let s = linalg::svd(matrix)?.s;
    vbmf_from_spectrum(s.as_slice().unwrap_or(&s.to_vec()), (l, m))
}

/// [`vbmf`] from the singular values of an `l x m` matrix (all `min(l, m)` of them, any
/// order).
///
/// Errors: a spectrum of the wrong length, negative, NaN or infinite values.
///
/// ```
/// use deepcompress_lowrank::rank::vbmf_from_spectrum;
/// assert_eq!(vbmf_from_spectrum(&[0.0; 5], (5, 8))?.rank, 0);
/// assert!(vbmf_from_spectrum(&[1.0; 4], (5, 8)).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn vbmf_from_spectrum(singular_values: &[f32], (l, m): (usize, usize)) -> Result<Vbmf> {
    let (l, m) = (l.min(m), l.max(m));
    if l == 0 || singular_values.len() != l {
        return Err(LowRankError::param(
            "singular_values",
            format!("{} values", singular_values.len()),
            format!("need all min(l, m) = {l} singular values of the {l}x{m} matrix"),
        ));
    }
    check_finite(singular_values, "vbmf", "singular value")?;
    if let Some(bad) = singular_values.iter().find(|&&v| v < 0.0) {
        return Err(LowRankError::param("singular_values", bad, "must be non-negative"));
    }
    let mut s: Vec<f64> = singular_values.iter().map(|&v| f64::from(v)).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    let energy: f64 = s.iter().map(|v| v * v).sum();
    if energy == 0.0 {
        return Ok(Vbmf { rank: 0, sigma2: 0.0, threshold: 0.0 });
    }
    let (lf, mf) = (l as f64, m as f64);
    let alpha = lf / mf;
    let tau_bar = tau_bar(alpha);
    let x_bar = (1.0 + tau_bar) * (1.0 + alpha / tau_bar);

    // Bounds on σ² (noise-estimation theorem): at most the mean energy; at least what the
    // components beyond the largest possible EVB rank H̄ = ⌈L/(1+α)⌉ - 1 imply.
    let upper = energy / (lf * mf);
    let h_bar = ((lf / (1.0 + alpha)).ceil() as usize).saturating_sub(1).min(l - 1);
    let tail = &s[h_bar..];
    let tail_mean = tail.iter().map(|v| v * v).sum::<f64>() / (tail.len() as f64 * mf);
    // A noiseless low-rank matrix has a zero lower bound; σ² then runs down to a level
    // below any rounding of the non-zero singular values.
    let lower = (s[h_bar] * s[h_bar] / (mf * x_bar)).max(tail_mean).max(upper * 1e-14).min(upper);

    let objective = |sigma2: f64| -> f64 {
        s.iter()
            .map(|&g| {
                let x = g * g / (mf * sigma2);
                let mut f = x + sigma2.ln();
                if x > x_bar {
                    let t = tau(x, alpha);
                    f += (t + 1.0).ln() + alpha * (t / alpha + 1.0).ln() - t;
                }
                f
            })
            .sum()
    };
    let sigma2 =
        if upper > lower * (1.0 + 1e-12) { minimise_log(objective, lower, upper) } else { upper };
    let threshold = (mf * sigma2 * x_bar).sqrt();
    let rank = s.iter().filter(|&&g| g > threshold).count();
    Ok(Vbmf { rank, sigma2, threshold })
}

/// `τ̄(α)`: the zero of `Φ(τ) + Φ(τ/α)`, `Φ(z) = ln(z + 1)/z - 1/2`, which decreases from
/// 1 to -1 on `(0, ∞)`; bisection to full precision (≈ 2.5129 √α).
fn tau_bar(alpha: f64) -> f64 {
    let phi = |z: f64| (z.ln_1p() / z) - 0.5;
    let xi = |t: f64| phi(t) + phi(t / alpha);
    let (mut lo, mut hi) = (1e-12, 1.0);
    while xi(hi) > 0.0 {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if xi(mid) > 0.0 { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

/// `τ(x; α) = ½ (x - (1 + α) + sqrt((x - (1 + α))² - 4α))`, for `x > x̄`.
fn tau(x: f64, alpha: f64) -> f64 {
    let b = x - (1.0 + alpha);
    0.5 * (b + (b * b - 4.0 * alpha).max(0.0).sqrt())
}

/// Minimises `f` over `[lo, hi]` in `ln σ²`: a grid of 400 points, then golden-section
/// search in the bracket around the best grid point.
fn minimise_log(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> f64 {
    const GRID: usize = 400;
    let (a, b) = (lo.ln(), hi.ln());
    let at = |i: usize| a + (b - a) * i as f64 / GRID as f64;
    let g = |t: f64| f(t.exp());
    let best = (0..=GRID).min_by(|&i, &j| g(at(i)).total_cmp(&g(at(j)))).unwrap_or(0);
    let (mut x0, mut x1) = (at(best.saturating_sub(1)), at((best + 1).min(GRID)));
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut c = x1 - ratio * (x1 - x0);
    let mut d = x0 + ratio * (x1 - x0);
    for _ in 0..100 {
        if g(c) < g(d) {
            x1 = d;
        } else {
            x0 = c;
        }
        c = x1 - ratio * (x1 - x0);
        d = x0 + ratio * (x1 - x0);
    }
    let mid = 0.5 * (x0 + x1);
    // The grid point itself may beat the refined one on a kink.
    if g(mid) <= g(at(best)) { mid.exp() } else { at(best).exp() }
}

/// Tucker-2 ranks `(r_out, r_in)` of a kernel `[N, C, kh, kw]` by EVBMF on its mode-0
/// (`N x C kh kw`) and mode-1 (`C x N kh kw`) unfoldings, as Kim et al. (2015,
/// arXiv 1511.06530) choose them. Each rank is at least 1 (a Tucker rank of 0 would
/// delete the layer); pass the result to
/// [`Tucker2Config::new`](crate::conv::Tucker2Config::new).
///
/// Errors: an empty kernel, NaN or infinity.
///
/// ```
/// use deepcompress_lowrank::rank::vbmf_tucker_ranks;
/// use ndarray::Array4;
/// use rand::{Rng, SeedableRng};
/// // Two terms, each an outer product of an output-channel profile, an input-channel
/// // profile and a spatial one, plus i.i.d. noise: both unfoldings have rank 2.
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let w = Array4::from_shape_fn((16, 12, 3, 3), |(n, c, y, x)| {
///     let a = [1.0, -2.0][n % 2] * [0.5, 1.0, -1.5][c % 3];
///     let b = [2.0, 1.0][n % 2] * [1.0, 0.3, 0.7][c % 3];
///     a * (y as f32 - 1.0) + b * (x as f32 + 1.0) + rng.random_range(-0.05..0.05)
/// });
/// let (r_out, r_in) = vbmf_tucker_ranks(w.view())?;
/// assert_eq!((r_out, r_in), (2, 2));
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn vbmf_tucker_ranks(weight: ArrayView4<f32>) -> Result<(usize, usize)> {
    if weight.is_empty() {
        return Err(LowRankError::param(
            "weight",
            format!("{:?}", weight.shape()),
            "must be non-empty",
        ));
    }
    check_finite(weight.iter(), "vbmf_tucker_ranks", "weight")?;
    let mut ranks = [0; 2];
    for (mode, rank) in ranks.iter_mut().enumerate() {
        let unf = crate::conv::unfold(weight, mode);
        let (rows, cols) = unf.dim();
        // Singular values from the eigenvalues of the smaller Gram: cheap for wide
        // unfoldings, and the threshold only needs them to the Gram's f32 precision.
        let g =
            if rows <= cols { crate::conv::gram(unf.view()) } else { crate::conv::gram(unf.t()) };
        let (w, _) = linalg::eigh(g.view())?;
        let s: Vec<f32> = w.iter().map(|&e| e.max(0.0).sqrt()).collect();
        *rank = vbmf_from_spectrum(&s, (rows, cols))?.rank.max(1);
    }
    Ok((ranks[0], ranks[1]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Standard normal matrix by Box–Muller from a seed.
    fn normal(m: usize, n: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((m, n), |_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random::<f64>();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
    }

    /// `rank` components of size about `scale * sqrt(m n)` plus unit noise.
    fn low_rank_plus_noise(m: usize, n: usize, rank: usize, scale: f32, seed: u64) -> Array2<f32> {
        let u = normal(m, rank, seed);
        let v = normal(rank, n, seed + 1);
        u.dot(&v) * (scale / (rank as f32).sqrt()) + normal(m, n, seed + 2)
    }

    #[test]
    fn tau_bar_matches_the_papers_constant() {
        assert!((tau_bar(1.0) - 2.5129).abs() < 1e-3, "{}", tau_bar(1.0));
        for alpha in [0.1, 0.3, 0.7] {
            let t = tau_bar(alpha);
            assert!((t / (2.5129 * alpha.sqrt()) - 1.0).abs() < 0.05, "alpha {alpha}: {t}");
        }
    }

    #[test]
    fn recovers_rank_of_low_rank_plus_noise() {
        for (seed, rank) in [(1, 5), (2, 5), (3, 1), (4, 10)] {
            let a = low_rank_plus_noise(100, 80, rank, 1.0, seed);
            let v = vbmf(a.view()).unwrap();
            assert_eq!(v.rank, rank, "seed {seed}: {v:?}");
            // The noise variance is 1.
            assert!((v.sigma2 - 1.0).abs() < 0.2, "{v:?}");
        }
    }

    #[test]
    fn noiseless_low_rank_gives_its_rank() {
        let a = normal(40, 3, 20).dot(&normal(3, 30, 21));
        let mut s: Vec<f32> = vec![0.0; 30];
        let svd = deepcompress_core::linalg::svd(a.view()).unwrap();
        s[..3].copy_from_slice(&svd.s.as_slice().unwrap()[..3]);
        assert_eq!(vbmf_from_spectrum(&s, (40, 30)).unwrap().rank, 3);
        assert_eq!(vbmf(a.view()).unwrap().rank, 3);
    }

    #[test]
    fn transposed_matrix_gives_the_same_answer() {
        let a = low_rank_plus_noise(100, 80, 5, 1.0, 9);
        let (x, y) = (vbmf(a.view()).unwrap(), vbmf(a.t()).unwrap());
        assert_eq!(x.rank, y.rank);
        assert!((x.sigma2 - y.sigma2).abs() < 1e-4 * x.sigma2);
    }

    #[test]
    fn pure_noise_gives_a_small_rank() {
        for seed in 0..3 {
            let a = normal(100, 80, 100 + seed) * 3.0;
            let v = vbmf(a.view()).unwrap();
            assert!(v.rank <= 1, "{v:?}");
            assert!((v.sigma2 / 9.0 - 1.0).abs() < 0.2, "{v:?}");
        }
    }

    #[test]
    fn scale_invariant() {
        let a = low_rank_plus_noise(60, 90, 4, 1.0, 5);
        let x = vbmf(a.view()).unwrap();
        let y = vbmf((&a * 1e-3).view()).unwrap();
        assert_eq!(x.rank, y.rank);
        assert!((y.sigma2 / x.sigma2 - 1e-6).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(vbmf(Array2::<f32>::zeros((0, 3)).view()).is_err());
        assert!(vbmf_from_spectrum(&[1.0, -1.0], (2, 3)).is_err());
        assert!(vbmf_from_spectrum(&[1.0, f32::NAN], (2, 3)).is_err());
        let mut a = Array2::<f32>::ones((3, 3));
        a[[1, 1]] = f32::INFINITY;
        assert!(matches!(vbmf(a.view()), Err(LowRankError::NonFinite { .. })));
    }

    #[test]
    fn tucker_ranks_follow_the_channel_structure() {
        // Output channels span 3 directions, input channels 2, plus noise.
        let (n, c, k) = (24, 16, 9);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = normal(n, 3, 10);
        let b = normal(c, 2, 11);
        let g = normal(3, 2 * k, 12) * 4.0;
        let w = ndarray::Array4::from_shape_fn((n, c, 3, 3), |(o, i, y, x)| {
            let mut v = 0.0;
            for p in 0..3 {
                for q in 0..2 {
                    v += a[[o, p]] * b[[i, q]] * g[[p, q * k + y * 3 + x]];
                }
            }
            v + 0.05 * rng.random_range(-1.0_f32..1.0)
        });
        assert_eq!(vbmf_tucker_ranks(w.view()).unwrap(), (3, 2));
    }
}
