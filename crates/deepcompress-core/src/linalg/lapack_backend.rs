//! The `lapack` feature backend: LAPACK (system OpenBLAS) through `ndarray-linalg`.
//!
//! Same `f64` kernel signatures as the faer backend; the parent module does the rest.

use ndarray::{Array1, Array2};
use ndarray_linalg::error::LinalgError;
use ndarray_linalg::{Cholesky, Eigh, JobSvd, QR, SVDDC, UPLO};

use crate::error::{CoreError, Result};

/// Name reported by [`super::backend`].
pub(super) const NAME: &str = "lapack";

fn failed(op: &'static str, e: LinalgError) -> CoreError {
    CoreError::Linalg { op, reason: e.to_string() }
}

/// Thin SVD (divide and conquer, `gesdd`): `(u, s, vt)` with `s` non-increasing.
pub(super) fn svd(a: &Array2<f64>) -> Result<(Array2<f64>, Array1<f64>, Array2<f64>)> {
    let (u, s, vt) = a.svddc(JobSvd::Some).map_err(|e| failed("svd", e))?;
    // `JobSvd::Some` always yields both factors; a missing one would be a library bug.
    match (u, vt) {
        (Some(u), Some(vt)) => Ok((u, s, vt)),
        _ => Err(CoreError::Linalg {
            op: "svd",
            reason: "LAPACK returned no singular vectors".into(),
        }),
    }
}

/// Thin Householder QR (`geqrf` + `orgqr`): `(q, r)`.
pub(super) fn qr(a: &Array2<f64>) -> Result<(Array2<f64>, Array2<f64>)> {
    a.qr().map_err(|e| failed("qr", e))
}

/// Lower Cholesky factor (`potrf`); reads only the lower triangle of `a`.
pub(super) fn cholesky(a: &Array2<f64>) -> Result<Array2<f64>> {
    a.cholesky(UPLO::Lower).map_err(|e| match e {
        // Input is validated square and finite, so a LAPACK failure here is potrf
        // reporting a non-positive leading minor (info > 0).
        LinalgError::Lapack(lapack) => CoreError::Linalg {
            op: "cholesky",
            reason: format!("matrix is not positive definite ({lapack})"),
        },
        other => failed("cholesky", other),
    })
}

/// Symmetric eigendecomposition (`syevd`): ascending eigenvalues, eigenvectors as columns.
pub(super) fn eigh(a: &Array2<f64>) -> Result<(Array1<f64>, Array2<f64>)> {
    a.eigh(UPLO::Lower).map_err(|e| failed("eigh", e))
}
