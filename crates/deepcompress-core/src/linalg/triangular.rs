//! Inverse of a lower-triangular matrix, for whitening and inverse-Hessian factors built
//! on top of a Cholesky factor (neither faer's nor LAPACK's wrapper is needed for it).

use crate::error::{CoreError, Result};
use ndarray::{Array2, ArrayView2, s};

/// `L⁻¹` for a square lower-triangular `L` with a non-zero diagonal, by forward
/// substitution row by row: row `i` of `L⁻¹` is `(eᵢ - Σ_{k<i} L[i,k] · row k of L⁻¹) /
/// L[i,i]` (`O(n³/6)`). Entries above the diagonal of `l` are ignored.
///
/// In f64, because callers invert Cholesky factors of Gram matrices whose conditioning
/// f32 cannot carry. A non-square input is a [`CoreError::Shape`]; a zero or non-finite
/// diagonal entry a [`CoreError::Linalg`].
///
/// ```
/// use deepcompress_core::linalg::lower_triangular_inverse;
/// use ndarray::{array, Array2};
/// let l = array![[2.0, 0.0, 0.0], [1.0, 3.0, 0.0], [-1.0, 0.5, 1.5]];
/// let p = l.dot(&lower_triangular_inverse(l.view())?);
/// assert!((&p - &Array2::<f64>::eye(3)).iter().all(|d| d.abs() < 1e-12));
/// assert!(lower_triangular_inverse(array![[0.0, 0.0], [1.0, 1.0]].view()).is_err());
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn lower_triangular_inverse(l: ArrayView2<f64>) -> Result<Array2<f64>> {
    let n = l.nrows();
    if l.ncols() != n {
        return Err(CoreError::shape("lower_triangular_inverse", "a square matrix", l.shape()));
    }
    if let Some(i) = (0..n).find(|&i| !(l[[i, i]].is_finite() && l[[i, i]] != 0.0)) {
        return Err(CoreError::Linalg {
            op: "lower_triangular_inverse",
            reason: format!("diagonal entry {i} is {}", l[[i, i]]),
        });
    }
    let mut inv = Array2::<f64>::zeros((n, n));
    let mut row = vec![0.0f64; n];
    for i in 0..n {
        row[..=i].iter_mut().for_each(|v| *v = 0.0);
        row[i] = 1.0;
        for k in 0..i {
            let a = l[[i, k]];
            if a != 0.0 {
                for (r, &p) in row[..=k].iter_mut().zip(inv.slice(s![k, ..=k]).iter()) {
                    *r -= a * p;
                }
            }
        }
        let d = l[[i, i]];
        for (dst, &r) in inv.slice_mut(s![i, ..=i]).iter_mut().zip(&row[..=i]) {
            *dst = r / d;
        }
    }
    Ok(inv)
}
