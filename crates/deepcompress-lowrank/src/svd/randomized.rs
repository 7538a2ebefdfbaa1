//! Randomized SVD (Halko, Martinsson and Tropp 2011, arXiv 0909.4061, algorithms 4.4 and 5.1).
//!
//! A Gaussian sketch `Y = A Ω` captures the range of `A`; a few power iterations
//! `(A Aᵀ)^q` sharpen a slowly decaying spectrum; the SVD of the small projection
//! `B = Qᵀ A` then gives the leading components. The cost is a handful of `m x n x (r + p)`
//! matrix products instead of an `O(m n min(m, n))` full SVD.

use super::truncated::check_rank;
use crate::error::{LowRankError, Result, check_finite};
use deepcompress_core::linalg::{self, Svd};
use deepcompress_core::ops::matmul;
use ndarray::{Array2, ArrayView2, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Settings of a randomized SVD. The defaults (10 extra samples, 2 power iterations)
/// give errors within a few percent of the optimal rank-`r` error on weight matrices.
///
/// ```
/// use deepcompress_lowrank::svd::{RandomizedSvd, truncated_svd};
/// use ndarray::Array2;
///
/// // A rank-8 matrix plus a little noise.
/// let a = Array2::from_shape_fn((120, 80), |(i, j)| ((i % 8) as f32 - 3.5) * ((j * 7 % 8) as f32)
///     + 1e-3 * ((i * 31 + j * 17) % 13) as f32);
/// let approx = RandomizedSvd::default().compute(a.view(), 8)?;
/// let exact = truncated_svd(a.view(), 8)?;
/// let err = (&a - &approx.reconstruct()).mapv(|d| (d as f64).powi(2)).sum().sqrt();
/// assert!(err <= 1.05 * exact.error() + 1e-4);
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RandomizedSvd {
    /// Extra sketch columns beyond the rank (`p` in Halko et al.; 5 to 10 is typical).
    pub oversample: usize,
    /// Power iterations `q` (each costs two more passes over the matrix).
    pub power_iters: usize,
    /// Seed of the Gaussian test matrix: the same seed gives the same bits.
    pub seed: u64,
}

impl Default for RandomizedSvd {
    fn default() -> Self {
        Self { oversample: 10, power_iters: 2, seed: 0 }
    }
}

impl RandomizedSvd {
    /// The leading `rank` singular triplets of `a` (approximately).
    ///
    /// Errors: `rank` outside `1..=min(m, n)`, NaN or infinity in `a`.
    pub fn compute(&self, a: ArrayView2<f32>, rank: usize) -> Result<Svd> {
        let (m, n) = a.dim();
        check_rank(rank, (m, n))?;
        check_finite(a.iter(), "randomized_svd", "matrix entry")?;
        let l = (rank + self.oversample).min(m.min(n));
        let omega = gaussian((n, l), self.seed);
        let mut q = orthonormal(matmul(a, omega.view()))?;
        let at = a.t();
        for _ in 0..self.power_iters {
            let z = orthonormal(matmul(at, q.view()))?;
            q = orthonormal(matmul(a, z.view()))?;
        }
        let b = matmul(q.t(), a);
        let small = linalg::svd(b.view())?;
        let u = matmul(q.view(), small.u.slice(s![.., ..rank]));
        Ok(Svd {
            u,
            s: small.s.slice(s![..rank]).to_owned(),
            vt: small.vt.slice(s![..rank, ..]).to_owned(),
        })
    }
}

/// An orthonormal basis of the columns of `y` (thin QR).
fn orthonormal(y: Array2<f32>) -> Result<Array2<f32>> {
    linalg::qr(y.view()).map(|(q, _)| q).map_err(LowRankError::from)
}

/// Standard normal entries by the Box–Muller transform from a seeded ChaCha stream
/// (portable: the same seed gives the same matrix on every platform).
fn gaussian(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = shape.0 * shape.1;
    let mut v = Vec::with_capacity(len + 1);
    while v.len() < len {
        // 1 - u keeps the logarithm's argument in (0, 1].
        let u1: f64 = 1.0 - rng.random::<f64>();
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        v.push((r * t.cos()) as f32);
        v.push((r * t.sin()) as f32);
    }
    v.truncate(len);
    Array2::from_shape_vec(shape, v).expect("length matches the shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_has_unit_variance_and_is_seeded() {
        let g = gaussian((200, 50), 7);
        let mean = g.mean().unwrap();
        let var = g.mapv(|x| (x - mean).powi(2)).mean().unwrap();
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
        assert_eq!(g, gaussian((200, 50), 7));
        assert_ne!(g, gaussian((200, 50), 8));
    }

    #[test]
    fn full_rank_sketch_is_exact() {
        let a = Array2::from_shape_fn((30, 12), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let r =
            RandomizedSvd { power_iters: 0, ..Default::default() }.compute(a.view(), 12).unwrap();
        let back = r.reconstruct();
        assert!((&back - &a).iter().all(|d| d.abs() < 1e-3));
    }
}
