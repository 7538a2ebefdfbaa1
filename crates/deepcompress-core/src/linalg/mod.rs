//! Dense decompositions of `f32` matrices: SVD, QR, Cholesky and symmetric eigendecomposition.
//!
//! Compression methods (low-rank factorisation, whitening, second-order pruning) need only
//! these few routines, so they are plain functions over ndarray and the backend stays hidden:
//!
//! * `faer` (default): pure Rust, nothing to install.
//! * `lapack` (crate feature `lapack`): LAPACK from the system OpenBLAS via `ndarray-linalg`.
//!
//! [`backend`] tells which one is compiled in.
//!
//! # Conventions
//!
//! * **Precision.** Inputs are widened to `f64`, decomposed, and rounded back to `f32`, so the
//!   factors carry little more than one `f32` rounding error and intermediate squares cannot
//!   overflow. A result too large for `f32` is a [`CoreError::Linalg`] error.
//! * **Signs.** Factors are only unique up to sign; to make results reproducible across
//!   backends every singular vector and eigenvector has its largest-magnitude entry positive,
//!   and the diagonal of QR's `R` is non-negative.
//! * **Symmetry.** [`cholesky`] and [`eigh`] accept a matrix whose entries differ from their
//!   mirror by at most [`SYMMETRY_TOLERANCE`] times its largest magnitude (rounding in products
//!   such as `XᵀX`) and decompose its symmetric part `(A + Aᵀ) / 2`.
//! * **Errors.** An empty matrix is a [`CoreError::Shape`], NaN or infinity a
//!   [`CoreError::NonFinite`] whose context is the function name, a failed decomposition a
//!   [`CoreError::Linalg`]. No function panics.
//!
//! ```
//! use deepcompress_core::linalg;
//! use ndarray::array;
//!
//! let a = array![[3.0_f32, 0.0], [0.0, -2.0]];
//! let svd = linalg::svd(a.view())?;
//! assert!((svd.s[0] - 3.0).abs() < 1e-6 && (svd.s[1] - 2.0).abs() < 1e-6);
//! # Ok::<(), deepcompress_core::CoreError>(())
//! ```

use ndarray::{Array, Array1, Array2, ArrayView2, Dimension, s};

use crate::error::{CoreError, Result, ensure_finite};

// Always compiled: with `lapack` on it stays reachable through [`svd_using`], so that one
// build can compare the two backends.
mod faer_backend;
mod triangular;

pub use triangular::lower_triangular_inverse;
#[cfg(feature = "lapack")]
mod lapack_backend;

#[cfg(not(feature = "lapack"))]
use faer_backend as imp;
#[cfg(feature = "lapack")]
use lapack_backend as imp;

/// Largest relative asymmetry `|a[i,j] - a[j,i]| / max|a|` that [`cholesky`] and [`eigh`] accept.
///
/// ```
/// assert!(deepcompress_core::linalg::SYMMETRY_TOLERANCE < 1e-3);
/// ```
pub const SYMMETRY_TOLERANCE: f32 = 1e-4;

/// Name of the compiled-in backend: `"faer"` (default) or `"lapack"` (feature `lapack`).
///
/// ```
/// let name = deepcompress_core::linalg::backend();
/// assert!(name == "faer" || name == "lapack");
/// ```
pub fn backend() -> &'static str {
    imp::NAME
}

/// A decomposition backend compiled into this build.
///
/// ```
/// use deepcompress_core::linalg::{Backend, svd_using};
/// use ndarray::array;
/// let a = array![[3.0_f32, 0.0], [0.0, 2.0]];
/// for b in Backend::available() {
///     assert!((svd_using(*b, a.view())?.s[0] - 3.0).abs() < 1e-6);
/// }
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// faer, pure Rust.
    Faer,
    /// LAPACK through ndarray-linalg and the system OpenBLAS (feature `lapack`).
    #[cfg(feature = "lapack")]
    Lapack,
}

impl Backend {
    /// Every backend in this build, the default ([`backend`]) last.
    pub fn available() -> &'static [Backend] {
        #[cfg(feature = "lapack")]
        return &[Backend::Faer, Backend::Lapack];
        #[cfg(not(feature = "lapack"))]
        return &[Backend::Faer];
    }
}

/// [`svd`] on a chosen backend (benchmarks compare them in one run).
pub fn svd_using(backend: Backend, a: ArrayView2<f32>) -> Result<Svd> {
    let a = widen(a, "svd")?;
    let (mut u, s, mut vt) = match backend {
        Backend::Faer => faer_backend::svd(&a)?,
        #[cfg(feature = "lapack")]
        Backend::Lapack => lapack_backend::svd(&a)?,
    };
    fix_signs(&mut u, Some(&mut vt));
    Ok(Svd { u: narrow(&u, "svd")?, s: narrow(&s, "svd")?, vt: narrow(&vt, "svd")? })
}

/// A thin singular value decomposition `A = U diag(s) Vᵀ`.
///
/// With `k` components, `u` is `m x k` with orthonormal columns, `s` holds `k` non-negative
/// values in descending order and `vt` is `k x n` with orthonormal rows.
///
/// ```
/// use deepcompress_core::linalg;
/// use ndarray::array;
///
/// let svd = linalg::svd(array![[0.0_f32, 2.0], [1.0, 0.0]].view())?;
/// assert_eq!((svd.u.dim(), svd.s.len(), svd.vt.dim()), ((2, 2), 2, (2, 2)));
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Svd {
    /// Left singular vectors as columns, `m x k`.
    pub u: Array2<f32>,
    /// Singular values, descending, length `k`.
    pub s: Array1<f32>,
    /// Right singular vectors as rows, `k x n`.
    pub vt: Array2<f32>,
}

impl Svd {
    /// Multiplies the factors back together: `U diag(s) Vᵀ`, an `m x n` matrix.
    ///
    /// For a truncated SVD this is the best rank-`k` approximation of the input.
    ///
    /// ```
    /// use deepcompress_core::linalg;
    /// use ndarray::array;
    ///
    /// let a = array![[1.0_f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
    /// let back = linalg::svd(a.view())?.reconstruct();
    /// assert!((&back - &a).iter().all(|d| d.abs() < 1e-5));
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn reconstruct(&self) -> Array2<f32> {
        // Scaling the columns of U by s broadcasts s along the rows.
        (&self.u * &self.s).dot(&self.vt)
    }
}

/// Thin SVD of an `m x n` matrix, with `k = min(m, n)` components.
///
/// ```
/// use deepcompress_core::linalg;
/// use ndarray::array;
///
/// let a = array![[2.0_f32, 0.0, 0.0], [0.0, 0.0, 5.0]];
/// let svd = linalg::svd(a.view())?;
/// assert!((&svd.s - &array![5.0, 2.0]).iter().all(|d| d.abs() < 1e-6));
/// // The top right singular vector picks out the third column.
/// assert!((&svd.vt.row(0) - &array![0.0, 0.0, 1.0]).iter().all(|d| d.abs() < 1e-6));
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn svd(a: ArrayView2<f32>) -> Result<Svd> {
    let a = widen(a, "svd")?;
    let (u, s, vt) = svd_f64(&a)?;
    Ok(Svd { u: narrow(&u, "svd")?, s: narrow(&s, "svd")?, vt: narrow(&vt, "svd")? })
}

/// The `k` leading components of the SVD (`u`: `m x k`, `s`: `k`, `vt`: `k x n`).
///
/// Computed as the full thin SVD, then truncated. `k` must lie in `1..=min(m, n)`, otherwise
/// this is a [`CoreError::InvalidParam`].
///
/// ```
/// use deepcompress_core::linalg;
/// use ndarray::array;
///
/// let a = array![[4.0_f32, 0.0], [0.0, 1.0]];
/// let top = linalg::svd_top_k(a.view(), 1)?;
/// assert_eq!(top.s.len(), 1);
/// let best_rank_1 = array![[4.0, 0.0], [0.0, 0.0]];
/// assert!((&top.reconstruct() - &best_rank_1).iter().all(|d| d.abs() < 1e-6));
/// assert!(linalg::svd_top_k(a.view(), 3).is_err());
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn svd_top_k(a: ArrayView2<f32>, k: usize) -> Result<Svd> {
    const OP: &str = "svd_top_k";
    let (m, n) = a.dim();
    let a = widen(a, OP)?;
    let full = m.min(n);
    if k == 0 || k > full {
        return Err(CoreError::param(
            "k",
            k,
            format!("must be in 1..={full} for a {m}x{n} matrix"),
        ));
    }
    let (u, s, vt) = svd_f64(&a)?;
    Ok(Svd {
        u: narrow(&u.slice(s![.., ..k]).to_owned(), OP)?,
        s: narrow(&s.slice(s![..k]).to_owned(), OP)?,
        vt: narrow(&vt.slice(s![..k, ..]).to_owned(), OP)?,
    })
}

/// Thin QR decomposition `A = Q R`: `Q` is `m x k` with orthonormal columns, `R` is `k x n`
/// upper triangular with a non-negative diagonal, `k = min(m, n)`.
///
/// ```
/// use deepcompress_core::linalg;
/// use ndarray::array;
///
/// let a = array![[0.0_f32, 1.0], [3.0, 2.0]];
/// let (q, r) = linalg::qr(a.view())?;
/// assert!((&r - &array![[3.0, 2.0], [0.0, 1.0]]).iter().all(|d| d.abs() < 1e-6));
/// assert!((&q.dot(&r) - &a).iter().all(|d| d.abs() < 1e-6));
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn qr(a: ArrayView2<f32>) -> Result<(Array2<f32>, Array2<f32>)> {
    const OP: &str = "qr";
    let a = widen(a, OP)?;
    let (mut q, r) = imp::qr(&a)?;
    // Zero the below-diagonal rounding so R is exactly triangular.
    let mut r = r.triu(0);
    for j in 0..r.nrows().min(r.ncols()) {
        if r[[j, j]] < 0.0 {
            q.column_mut(j).mapv_inplace(|x| -x);
            r.row_mut(j).mapv_inplace(|x| -x);
        }
    }
    Ok((narrow(&q, OP)?, narrow(&r, OP)?))
}

/// Cholesky factor of a symmetric positive definite matrix: lower-triangular `L` with
/// `A = L Lᵀ` and a positive diagonal.
///
/// A non-square input is a [`CoreError::Shape`]; a matrix that is not symmetric (see
/// [`SYMMETRY_TOLERANCE`]) or not positive definite is a [`CoreError::Linalg`].
///
/// ```
/// use deepcompress_core::linalg;
/// use ndarray::array;
///
/// let l = linalg::cholesky(array![[4.0_f32, 2.0], [2.0, 2.0]].view())?;
/// assert!((&l - &array![[2.0, 0.0], [1.0, 1.0]]).iter().all(|d| d.abs() < 1e-6));
/// assert!(linalg::cholesky(array![[1.0_f32, 2.0], [2.0, 1.0]].view()).is_err());
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn cholesky(a: ArrayView2<f32>) -> Result<Array2<f32>> {
    const OP: &str = "cholesky";
    let a = symmetric_part(&widen_square(a, OP)?, OP)?;
    narrow(&imp::cholesky(&a)?.tril(0), OP)
}

/// Eigendecomposition of a symmetric matrix: `A = V diag(w) Vᵀ` with eigenvalues `w` in
/// ascending order and orthonormal eigenvectors as the columns of `V`.
///
/// A non-square input is a [`CoreError::Shape`]; a non-symmetric one (see
/// [`SYMMETRY_TOLERANCE`]) a [`CoreError::Linalg`].
///
/// ```
/// use deepcompress_core::linalg;
/// use ndarray::array;
///
/// let (w, v) = linalg::eigh(array![[2.0_f32, 1.0], [1.0, 2.0]].view())?;
/// assert!((w[0] - 1.0).abs() < 1e-6 && (w[1] - 3.0).abs() < 1e-6);
/// let h = std::f32::consts::FRAC_1_SQRT_2;
/// assert!((v[[0, 1]] - h).abs() < 1e-6 && (v[[1, 1]] - h).abs() < 1e-6);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn eigh(a: ArrayView2<f32>) -> Result<(Array1<f32>, Array2<f32>)> {
    const OP: &str = "eigh";
    let a = symmetric_part(&widen_square(a, OP)?, OP)?;
    let (w, mut v) = imp::eigh(&a)?;
    fix_signs(&mut v, None);
    Ok((narrow(&w, OP)?, narrow(&v, OP)?))
}

/// Backend SVD with the sign convention applied.
fn svd_f64(a: &Array2<f64>) -> Result<(Array2<f64>, Array1<f64>, Array2<f64>)> {
    let (mut u, s, mut vt) = imp::svd(a)?;
    fix_signs(&mut u, Some(&mut vt));
    Ok((u, s, vt))
}

/// Validates `a` (non-empty, finite) and copies it to a standard-layout `f64` matrix.
fn widen(a: ArrayView2<f32>, op: &'static str) -> Result<Array2<f64>> {
    if a.is_empty() {
        return Err(CoreError::shape(op, "a non-empty matrix", a.shape()));
    }
    ensure_finite(a.iter(), op, "input matrix")?;
    // Standard layout whatever the view's strides: LAPACK wrappers reject odd strides.
    Ok(Array2::from_shape_fn(a.dim(), |ij| f64::from(a[ij])))
}

/// [`widen`] for routines that need a square matrix.
fn widen_square(a: ArrayView2<f32>, op: &'static str) -> Result<Array2<f64>> {
    if a.nrows() != a.ncols() {
        return Err(CoreError::shape(op, "a square matrix", a.shape()));
    }
    widen(a, op)
}

/// Rounds a result back to `f32`, refusing values that overflow.
fn narrow<D: Dimension>(a: &Array<f64, D>, op: &'static str) -> Result<Array<f32, D>> {
    let out = a.mapv(|x| x as f32);
    if out.iter().all(|x| x.is_finite()) {
        Ok(out)
    } else {
        Err(CoreError::Linalg { op, reason: "result does not fit in f32".into() })
    }
}

/// Checks symmetry up to [`SYMMETRY_TOLERANCE`] and returns `(A + Aᵀ) / 2`.
fn symmetric_part(a: &Array2<f64>, op: &'static str) -> Result<Array2<f64>> {
    let scale = a.iter().fold(0.0_f64, |m, x| m.max(x.abs()));
    let tol = f64::from(SYMMETRY_TOLERANCE) * scale;
    for ((i, j), &x) in a.indexed_iter() {
        let gap = (x - a[[j, i]]).abs();
        if j > i && gap > tol {
            return Err(CoreError::Linalg {
                op,
                reason: format!("matrix is not symmetric: |a[{i},{j}] - a[{j},{i}]| = {gap:e}"),
            });
        }
    }
    Ok((a + &a.t()) * 0.5)
}

/// Flips each column of `vecs` (and the matching row of `partner`) so that its
/// largest-magnitude entry is positive; the first one wins ties.
fn fix_signs(vecs: &mut Array2<f64>, mut partner: Option<&mut Array2<f64>>) {
    for j in 0..vecs.ncols() {
        let mut col = vecs.column_mut(j);
        let pivot =
            col.iter().fold(0.0_f64, |best, &x| if x.abs() > best.abs() { x } else { best });
        if pivot < 0.0 {
            col.mapv_inplace(|x| -x);
            if let Some(p) = partner.as_deref_mut() {
                p.row_mut(j).mapv_inplace(|x| -x);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const SHAPES: [(usize, usize); 7] = [(1, 1), (1, 5), (5, 1), (4, 4), (7, 3), (3, 7), (12, 9)];

    fn random(m: usize, n: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_fn((m, n), |_| rng.random_range(-1.0..1.0))
    }

    fn random_spd(n: usize, seed: u64) -> Array2<f32> {
        let x = random(n, n, seed);
        x.dot(&x.t()) + Array2::<f32>::eye(n) * 0.5
    }

    fn random_symmetric(n: usize, seed: u64) -> Array2<f32> {
        let x = random(n, n, seed);
        (&x + &x.t()) * 0.5
    }

    /// `||a - b||_F / ||a||_F` (in f64 so huge entries do not overflow), absolute when `a` is 0.
    fn rel_err<D: Dimension>(a: &Array<f32, D>, b: &Array<f32, D>) -> f64 {
        let (a, b) = (a.mapv(f64::from), b.mapv(f64::from));
        let diff = (&a - &b).mapv(|x| x * x).sum().sqrt();
        let norm = a.mapv(|x| x * x).sum().sqrt();
        if norm > 0.0 { diff / norm } else { diff }
    }

    /// Largest entry of `|qᵀq - I|`: zero when the columns are orthonormal.
    fn ortho_err(q: &Array2<f32>) -> f32 {
        let gram = q.t().dot(q) - Array2::<f32>::eye(q.ncols());
        gram.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    fn close(a: f32, b: f32, tol: f32) -> bool {
        (a - b).abs() <= tol * (1.0 + b.abs())
    }

    fn check_svd(a: &Array2<f32>, svd: &Svd) {
        let k = a.nrows().min(a.ncols());
        assert_eq!((svd.u.dim(), svd.s.len(), svd.vt.dim()), ((a.nrows(), k), k, (k, a.ncols())));
        assert!(rel_err(a, &svd.reconstruct()) < 1e-4);
        assert!(ortho_err(&svd.u) < 1e-5, "U not orthonormal");
        assert!(ortho_err(&svd.vt.t().to_owned()) < 1e-5, "V not orthonormal");
        assert!(svd.s.iter().all(|&x| x >= 0.0));
        assert!(svd.s.windows(2).into_iter().all(|w| w[0] >= w[1]), "not descending: {}", svd.s);
    }

    /// Givens rotation by `t` radians in the `(i, j)` plane of an `n x n` identity.
    fn givens(n: usize, i: usize, j: usize, t: f32) -> Array2<f32> {
        let mut g = Array2::eye(n);
        g[[i, i]] = t.cos();
        g[[j, j]] = t.cos();
        g[[i, j]] = -t.sin();
        g[[j, i]] = t.sin();
        g
    }

    #[test]
    fn backend_name_matches_feature() {
        let expected = if cfg!(feature = "lapack") { "lapack" } else { "faer" };
        assert_eq!(backend(), expected);
    }

    #[test]
    fn svd_reconstructs_all_shapes() {
        for (seed, &(m, n)) in SHAPES.iter().enumerate() {
            let a = random(m, n, seed as u64);
            check_svd(&a, &svd(a.view()).unwrap());
        }
    }

    #[test]
    fn svd_of_rotated_diagonal_has_known_values() {
        // A = G1 [diag(4, 2, 0.5); 0] G2ᵀ with orthogonal G1 (4x4) and G2 (3x3).
        let g1 = givens(4, 0, 2, 0.7).dot(&givens(4, 1, 3, -1.1)).dot(&givens(4, 0, 1, 0.3));
        let g2 = givens(3, 0, 1, 0.9).dot(&givens(3, 1, 2, 0.4));
        let mut d = Array2::<f32>::zeros((4, 3));
        for (i, &v) in [4.0, 2.0, 0.5].iter().enumerate() {
            d[[i, i]] = v;
        }
        let a = g1.dot(&d).dot(&g2.t());
        let out = svd(a.view()).unwrap();
        check_svd(&a, &out);
        for (got, want) in out.s.iter().zip([4.0, 2.0, 0.5]) {
            assert!(close(*got, want, 1e-5), "{} vs {want}", out.s);
        }
        // Each singular vector is the matching column of G1 / G2 up to sign.
        for c in 0..3 {
            let dot_u = out.u.column(c).dot(&g1.column(c)).abs();
            let dot_v = out.vt.row(c).dot(&g2.column(c)).abs();
            assert!(close(dot_u, 1.0, 1e-5) && close(dot_v, 1.0, 1e-5));
        }
    }

    #[test]
    fn svd_of_diagonal_is_exact_permutation() {
        let a = array![[1.0_f32, 0.0, 0.0], [0.0, -5.0, 0.0], [0.0, 0.0, 2.0]];
        let out = svd(a.view()).unwrap();
        assert!(rel_err(&array![5.0, 2.0, 1.0], &out.s) < 1e-6);
        // Sign convention: largest entry of each u column positive, so the -5 goes into vt.
        let u = array![[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
        let vt = array![[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]];
        assert!(rel_err(&u, &out.u) < 1e-6 && rel_err(&vt, &out.vt) < 1e-6, "{out:?}");
    }

    #[test]
    fn svd_2x2_matches_closed_form() {
        // Independent reference: s1,2² = (F² ± sqrt(F⁴ - 4 det²)) / 2, F = Frobenius norm.
        for seed in 0..20 {
            let a = random(2, 2, 100 + seed);
            let (p, q, r, t) =
                (a[[0, 0]] as f64, a[[0, 1]] as f64, a[[1, 0]] as f64, a[[1, 1]] as f64);
            let f2 = p * p + q * q + r * r + t * t;
            let det = p * t - q * r;
            let root = (f2 * f2 - 4.0 * det * det).max(0.0).sqrt();
            let want = [((f2 + root) / 2.0).sqrt(), ((f2 - root) / 2.0).max(0.0).sqrt()];
            let got = svd(a.view()).unwrap().s;
            for (g, w) in got.iter().zip(want) {
                assert!((*g as f64 - w).abs() < 1e-5, "{got} vs {want:?}");
            }
        }
    }

    #[test]
    fn svd_top_k_is_truncation_of_full() {
        let a = random(6, 4, 7);
        let full = svd(a.view()).unwrap();
        for k in 1..=4 {
            let top = svd_top_k(a.view(), k).unwrap();
            assert!(rel_err(&full.s.slice(s![..k]).to_owned(), &top.s) < 1e-6);
            assert!(rel_err(&full.u.slice(s![.., ..k]).to_owned(), &top.u) < 1e-6);
            assert!(rel_err(&full.vt.slice(s![..k, ..]).to_owned(), &top.vt) < 1e-6);
        }
    }

    #[test]
    fn svd_top_k_rejects_bad_k() {
        let a = random(3, 5, 1);
        for k in [0, 4, 100] {
            let err = svd_top_k(a.view(), k).unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidParam { ref name, .. } if name == "k"),
                "{err}"
            );
        }
    }

    #[test]
    fn singular_values_square_to_eigenvalues_of_gram() {
        let a = random(8, 5, 3);
        let s = svd(a.view()).unwrap().s;
        let (w, _) = eigh(a.t().dot(&a).view()).unwrap();
        for (sv, ev) in s.iter().rev().zip(w.iter()) {
            assert!(close(sv * sv, *ev, 1e-4), "{s} vs {w}");
        }
    }

    #[test]
    fn qr_reconstructs_all_shapes() {
        for (seed, &(m, n)) in SHAPES.iter().enumerate() {
            let a = random(m, n, 50 + seed as u64);
            let (q, r) = qr(a.view()).unwrap();
            let k = m.min(n);
            assert_eq!((q.dim(), r.dim()), ((m, k), (k, n)));
            assert!(rel_err(&a, &q.dot(&r)) < 1e-4);
            assert!(ortho_err(&q) < 1e-5);
            assert_eq!(r, r.triu(0));
            assert!((0..k).all(|i| r[[i, i]] >= 0.0));
        }
    }

    #[test]
    fn qr_2x2_matches_gram_schmidt() {
        let a = array![[3.0_f32, 1.0], [4.0, 2.0]];
        let (q, r) = qr(a.view()).unwrap();
        // First column has norm 5; R = [[5, 11/5], [0, 2/5]].
        let want_r = array![[5.0_f32, 2.2], [0.0, 0.4]];
        let want_q = array![[0.6_f32, -0.8], [0.8, 0.6]];
        assert!(rel_err(&want_r, &r) < 1e-6 && rel_err(&want_q, &q) < 1e-6, "{q}\n{r}");
    }

    #[test]
    fn cholesky_reconstructs_spd() {
        for n in [1, 2, 5, 16] {
            let a = random_spd(n, n as u64);
            let l = cholesky(a.view()).unwrap();
            assert_eq!(l, l.tril(0));
            assert!(l.diag().iter().all(|&x| x > 0.0));
            assert!(rel_err(&a, &l.dot(&l.t())) < 1e-4);
        }
    }

    #[test]
    fn cholesky_2x2_matches_closed_form() {
        let a = array![[9.0_f32, 3.0], [3.0, 5.0]];
        // l11 = 3, l21 = 3 / 3 = 1, l22 = sqrt(5 - 1) = 2.
        let l = cholesky(a.view()).unwrap();
        assert!(rel_err(&array![[3.0, 0.0], [1.0, 2.0]], &l) < 1e-6, "{l}");
    }

    #[test]
    fn cholesky_rejects_bad_matrices() {
        let err = cholesky(random(2, 3, 0).view()).unwrap_err();
        assert!(matches!(err, CoreError::Shape { .. }), "{err}");
        for bad in [array![[1.0_f32, 2.0], [2.0, 1.0]], array![[-1.0_f32]], array![[0.0_f32]]] {
            let err = cholesky(bad.view()).unwrap_err();
            assert!(matches!(err, CoreError::Linalg { op: "cholesky", .. }), "{err}");
        }
        let err = cholesky(array![[2.0_f32, 1.0], [0.0, 2.0]].view()).unwrap_err();
        assert!(err.to_string().contains("not symmetric"), "{err}");
    }

    #[test]
    fn symmetry_tolerance_absorbs_rounding() {
        let mut a = random_spd(4, 9);
        a[[0, 3]] += 1e-6;
        let l = cholesky(a.view()).unwrap();
        assert!(rel_err(&a, &l.dot(&l.t())) < 1e-4);
        assert!(eigh(a.view()).is_ok());
    }

    #[test]
    fn eigh_reconstructs_symmetric() {
        for n in [1, 2, 5, 16] {
            let a = random_symmetric(n, 20 + n as u64);
            let (w, v) = eigh(a.view()).unwrap();
            assert_eq!((w.len(), v.dim()), (n, (n, n)));
            assert!(w.windows(2).into_iter().all(|p| p[0] <= p[1]), "not ascending: {w}");
            assert!(ortho_err(&v) < 1e-5);
            assert!(rel_err(&a, &(&v * &w).dot(&v.t())) < 1e-4);
        }
    }

    #[test]
    fn eigh_2x2_matches_closed_form() {
        // Independent reference: (a + c) / 2 ± sqrt(((a - c) / 2)² + b²).
        for seed in 0..20 {
            let m = random_symmetric(2, 200 + seed);
            let (a, b, c) = (m[[0, 0]] as f64, m[[0, 1]] as f64, m[[1, 1]] as f64);
            let mid = (a + c) / 2.0;
            let rad = (((a - c) / 2.0).powi(2) + b * b).sqrt();
            let (w, _) = eigh(m.view()).unwrap();
            assert!(
                (w[0] as f64 - (mid - rad)).abs() < 1e-6
                    && (w[1] as f64 - (mid + rad)).abs() < 1e-6
            );
        }
    }

    #[test]
    fn eigh_rejects_bad_matrices() {
        let err = eigh(random(3, 2, 0).view()).unwrap_err();
        assert!(matches!(err, CoreError::Shape { .. }), "{err}");
        let err = eigh(array![[1.0_f32, 5.0], [0.0, 1.0]].view()).unwrap_err();
        assert!(matches!(err, CoreError::Linalg { op: "eigh", .. }), "{err}");
    }

    #[test]
    fn non_finite_input_is_rejected_by_name() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut a = random_spd(3, 4);
            a[[1, 1]] = bad;
            let results = [
                ("svd", svd(a.view()).map(|_| ())),
                ("svd_top_k", svd_top_k(a.view(), 1).map(|_| ())),
                ("qr", qr(a.view()).map(|_| ())),
                ("cholesky", cholesky(a.view()).map(|_| ())),
                ("eigh", eigh(a.view()).map(|_| ())),
            ];
            for (name, res) in results {
                match res {
                    Err(CoreError::NonFinite { context, .. }) => assert_eq!(context, name),
                    other => panic!("{name}: expected NonFinite, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn empty_input_is_a_shape_error() {
        for (m, n) in [(0, 0), (0, 3), (3, 0)] {
            let a = Array2::<f32>::zeros((m, n));
            let results = [
                svd(a.view()).map(|_| ()),
                svd_top_k(a.view(), 1).map(|_| ()),
                qr(a.view()).map(|_| ()),
                cholesky(a.view()).map(|_| ()),
                eigh(a.view()).map(|_| ()),
            ];
            for res in results {
                assert!(matches!(res, Err(CoreError::Shape { .. })), "{m}x{n}: {res:?}");
            }
        }
    }

    #[test]
    fn strided_views_are_accepted() {
        let base = random(9, 8, 11);
        let a = base.slice(s![..;2, ..;3]);
        check_svd(&a.to_owned(), &svd(a).unwrap());
        let at = base.t();
        check_svd(&at.to_owned(), &svd(at).unwrap());
        let (q, r) = qr(at).unwrap();
        assert!(rel_err(&at.to_owned(), &q.dot(&r)) < 1e-4);
    }

    #[test]
    fn extreme_magnitudes() {
        // f64 internals keep huge and tiny inputs accurate instead of over/underflowing.
        for scale in [1e-30_f32, 1e30] {
            let a = random(5, 4, 2) * scale;
            check_svd(&a, &svd(a.view()).unwrap());
        }
        // ...but a result beyond f32 is an error, not infinity.
        let a = Array2::from_elem((2, 2), f32::MAX);
        let err = svd(a.view()).unwrap_err();
        assert!(matches!(err, CoreError::Linalg { op: "svd", .. }), "{err}");
    }

    #[test]
    fn zero_matrix_is_fine() {
        let a = Array2::<f32>::zeros((3, 2));
        let out = svd(a.view()).unwrap();
        assert_eq!(out.s, array![0.0, 0.0]);
        assert!(ortho_err(&out.u) < 1e-6 && ortho_err(&out.vt.t().to_owned()) < 1e-6);
        let (q, r) = qr(a.view()).unwrap();
        assert_eq!(q.dot(&r), a);
    }

    /// Under `--features lapack` both backends are compiled; compare them directly.
    #[cfg(feature = "lapack")]
    #[test]
    fn faer_and_lapack_agree() {
        let widen = |a: &Array2<f32>| a.mapv(f64::from);
        let near = |x: &Array2<f64>, y: &Array2<f64>| (x - y).iter().all(|d| d.abs() < 1e-9);
        for (seed, &(m, n)) in SHAPES.iter().enumerate() {
            let a = widen(&random(m, n, 300 + seed as u64));
            let (mut u1, s1, mut vt1) = faer_backend::svd(&a).unwrap();
            let (mut u2, s2, mut vt2) = lapack_backend::svd(&a).unwrap();
            fix_signs(&mut u1, Some(&mut vt1));
            fix_signs(&mut u2, Some(&mut vt2));
            assert!((&s1 - &s2).iter().all(|d| d.abs() < 1e-9));
            assert!(near(&u1, &u2) && near(&vt1, &vt2), "svd differs for {m}x{n}");
            let (q1, r1) = faer_backend::qr(&a).unwrap();
            let (q2, r2) = lapack_backend::qr(&a).unwrap();
            assert!(near(&q1.dot(&r1.triu(0)), &q2.dot(&r2.triu(0))));
        }
        let spd = widen(&random_spd(6, 5));
        let l1 = faer_backend::cholesky(&spd).unwrap().tril(0);
        let l2 = lapack_backend::cholesky(&spd).unwrap().tril(0);
        assert!(near(&l1, &l2));
        let (w1, mut v1) = faer_backend::eigh(&spd).unwrap();
        let (w2, mut v2) = lapack_backend::eigh(&spd).unwrap();
        fix_signs(&mut v1, None);
        fix_signs(&mut v2, None);
        assert!((&w1 - &w2).iter().all(|d| d.abs() < 1e-9) && near(&v1, &v2));
    }

    fn matrix(max_dim: usize, range: f32) -> impl Strategy<Value = Array2<f32>> {
        (1..=max_dim, 1..=max_dim).prop_flat_map(move |(m, n)| {
            prop::collection::vec(-range..range, m * n)
                .prop_map(move |v| Array2::from_shape_vec((m, n), v).unwrap())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_svd_reconstructs(a in matrix(8, 100.0), exp in -12i32..12) {
            let a = a * 10f32.powi(exp);
            let out = svd(a.view()).unwrap();
            check_svd(&a, &out);
        }

        #[test]
        fn prop_qr_reconstructs(a in matrix(8, 100.0)) {
            let (q, r) = qr(a.view()).unwrap();
            prop_assert!(rel_err(&a, &q.dot(&r)) < 1e-4);
            prop_assert!(ortho_err(&q) < 1e-5);
        }

        #[test]
        fn prop_never_panics(
            v in prop::collection::vec(any::<f32>(), 1..=16),
            wide in any::<bool>(),
            k in 0usize..5,
        ) {
            // Arbitrary bit patterns: NaN, infinities, subnormals, f32::MAX.
            let n = v.len();
            let shape = if wide { (1, n) } else { (n, 1) };
            let a = Array2::from_shape_vec(shape, v.clone()).unwrap();
            let side = (n as f64).sqrt() as usize;
            let sq = Array2::from_shape_vec((side, side), v[..side * side].to_vec()).unwrap();
            for x in [a.view(), sq.view()] {
                let _ = svd(x);
                let _ = svd_top_k(x, k);
                let _ = qr(x);
                let _ = cholesky(x);
                let _ = eigh(x);
            }
        }
    }
}
