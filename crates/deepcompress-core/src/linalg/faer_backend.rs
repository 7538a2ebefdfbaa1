//! The default backend: pure-Rust decompositions from `faer`.
//!
//! Every kernel takes and returns `f64` ndarray matrices; validation, conversion and sign
//! conventions live in the parent module so both backends behave identically.

use faer::linalg::solvers::LltError;
use faer::{Mat, MatRef, Side};
use ndarray::{Array1, Array2};

use crate::error::{CoreError, Result};

/// Name reported by [`super::backend`].
// Unused under `lapack`, where only `svd_using` and the cross-backend test reach this module.
#[cfg_attr(feature = "lapack", allow(dead_code))]
pub(super) const NAME: &str = "faer";

fn to_faer(a: &Array2<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[[i, j]])
}

fn to_ndarray(m: MatRef<'_, f64>) -> Array2<f64> {
    Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| m[(i, j)])
}

fn no_convergence(op: &'static str) -> CoreError {
    CoreError::Linalg { op, reason: "iteration did not converge".into() }
}

/// Thin SVD: `(u, s, vt)` with `s` non-increasing.
pub(super) fn svd(a: &Array2<f64>) -> Result<(Array2<f64>, Array1<f64>, Array2<f64>)> {
    let svd = to_faer(a).thin_svd().map_err(|_| no_convergence("svd"))?;
    let s = svd.S().column_vector();
    let s = Array1::from_shape_fn(s.nrows(), |i| s[i]);
    Ok((to_ndarray(svd.U()), s, to_ndarray(svd.V().transpose())))
}

/// Thin Householder QR: `(q, r)`.
#[cfg_attr(feature = "lapack", allow(dead_code))]
pub(super) fn qr(a: &Array2<f64>) -> Result<(Array2<f64>, Array2<f64>)> {
    let qr = to_faer(a).qr();
    Ok((to_ndarray(qr.compute_thin_Q().as_ref()), to_ndarray(qr.thin_R())))
}

/// Lower Cholesky factor; reads only the lower triangle of `a`.
#[cfg_attr(feature = "lapack", allow(dead_code))]
pub(super) fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    match to_faer(a).llt(Side::Lower) {
        Ok(llt) => Ok(to_ndarray(llt.L())),
        Err(LltError::NonPositivePivot { index }) => Err(CoreError::Linalg {
            op: "cholesky",
            reason: format!("matrix is not positive definite (pivot {index} is not positive)"),
        }),
    }
}

/// Symmetric eigendecomposition: ascending eigenvalues, eigenvectors as columns.
#[cfg_attr(feature = "lapack", allow(dead_code))]
pub(super) fn eigh(a: &Array2<f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    let evd = to_faer(a).self_adjoint_eigen(Side::Lower).map_err(|_| no_convergence("eigh"))?;
    let w = evd.S().column_vector();
    Ok((Array1::from_shape_fn(w.nrows(), |i| w[i]), to_ndarray(evd.U())))
}
