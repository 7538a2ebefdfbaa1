//! Truncated SVD: the best rank-`r` approximation (Eckart–Young–Mirsky) and its exact error.

use crate::error::{LowRankError, Result, check_finite};
use deepcompress_core::linalg::{self, Svd};
use ndarray::{Array1, Array2, ArrayView2, s};

/// The rank-`r` truncation of an SVD together with the whole spectrum, so that the
/// approximation error is known exactly without forming the product.
///
/// ```
/// use deepcompress_lowrank::svd::truncated_svd;
/// use ndarray::array;
///
/// let w = array![[3.0_f32, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]];
/// let t = truncated_svd(w.view(), 2)?;
/// // Eckart–Young: the error is the norm of the dropped singular values.
/// assert!((t.error() - 1.0).abs() < 1e-6);
/// let (a, b) = t.factors();
/// assert_eq!((a.dim(), b.dim()), ((3, 2), (2, 3)));
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Truncated {
    /// The leading `r` components.
    pub svd: Svd,
    /// Every singular value of the input, descending (length `min(m, n)`).
    pub spectrum: Array1<f32>,
}

impl Truncated {
    /// The rank kept.
    pub fn rank(&self) -> usize {
        self.svd.s.len()
    }

    /// Frobenius norm of `W - W_r`: `sqrt(sum of the dropped sigma^2)`.
    pub fn error(&self) -> f64 {
        tail_norm(self.spectrum.as_slice().unwrap_or(&[]), self.rank())
    }

    /// `error() / ||W||_F` (0 for a zero matrix).
    pub fn relative_error(&self) -> f64 {
        let total = tail_norm(self.spectrum.as_slice().unwrap_or(&[]), 0);
        if total == 0.0 { 0.0 } else { self.error() / total }
    }

    /// Balanced factors `A = U sqrt(S)` (`m x r`) and `B = sqrt(S) Vᵀ` (`r x n`) with
    /// `A B = W_r`; balancing keeps both layers of a factored pair at the same scale,
    /// which matters when they are fine-tuned.
    pub fn factors(&self) -> (Array2<f32>, Array2<f32>) {
        balanced(&self.svd)
    }
}

/// `sqrt(sum_{i >= r} s_i^2)`, accumulated in `f64`.
pub(crate) fn tail_norm(s: &[f32], r: usize) -> f64 {
    s.iter().skip(r).map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

/// `U sqrt(S)` and `sqrt(S) Vᵀ`.
pub(crate) fn balanced(svd: &Svd) -> (Array2<f32>, Array2<f32>) {
    let root = svd.s.mapv(f32::sqrt);
    let a = &svd.u * &root;
    let b = &svd.vt * &root.view().insert_axis(ndarray::Axis(1));
    (a, b)
}

/// Checks `1 <= rank <= min(m, n)`, naming the matrix shape.
pub(crate) fn check_rank(rank: usize, (m, n): (usize, usize)) -> Result<()> {
    let full = m.min(n);
    if rank == 0 || rank > full {
        return Err(LowRankError::param(
            "rank",
            rank,
            format!("must be in 1..={full} for a {m}x{n} matrix"),
        ));
    }
    Ok(())
}

/// The best rank-`rank` approximation of `w` (an exact thin SVD, then truncated).
///
/// Errors: `rank` outside `1..=min(m, n)`, NaN or infinity in `w`.
///
/// ```
/// use deepcompress_lowrank::svd::truncated_svd;
/// use ndarray::array;
/// let w = array![[1.0_f32, 2.0], [2.0, 4.0]]; // rank one
/// assert!(truncated_svd(w.view(), 1)?.error() < 1e-6);
/// assert!(truncated_svd(w.view(), 0).is_err());
/// assert!(truncated_svd(array![[f32::NAN]].view(), 1).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn truncated_svd(w: ArrayView2<f32>, rank: usize) -> Result<Truncated> {
    check_rank(rank, w.dim())?;
    check_finite(w.iter(), "truncated_svd", "matrix entry")?;
    let full = linalg::svd(w)?;
    Ok(Truncated {
        svd: Svd {
            u: full.u.slice(s![.., ..rank]).to_owned(),
            s: full.s.slice(s![..rank]).to_owned(),
            vt: full.vt.slice(s![..rank, ..]).to_owned(),
        },
        spectrum: full.s,
    })
}
