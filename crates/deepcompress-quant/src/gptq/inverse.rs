//! The upper Cholesky factor of an inverse Hessian, which GPTQ reads its updates from.

use crate::error::{QuantError, Result};
use deepcompress_core::linalg;
use ndarray::Array2;

/// `U`, upper triangular with a positive diagonal, such that `Uᵀ U = H⁻¹`, for a symmetric
/// positive definite `H`.
///
/// With `J` the order-reversing permutation and `J H J = L Lᵀ` (the core Cholesky), one
/// has `H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J)` and `J L⁻¹ J` is upper triangular with a positive
/// diagonal, so by uniqueness it is the Cholesky factor of `H⁻¹` GPTQ asks for; `H⁻¹`
/// itself is never formed. `H` is scaled to a unit mean diagonal for the `f32`
/// factorisation and the factor is scaled back.
pub(crate) fn inverse_cholesky_upper(h: &Array2<f64>) -> Result<Array2<f64>> {
    let n = h.nrows();
    let mean = h.diag().sum() / n.max(1) as f64;
    if !(mean.is_finite() && mean > 0.0) {
        return Err(QuantError::param(
            "Hessian",
            format!("mean diagonal {mean}"),
            "must be finite and positive",
        ));
    }
    let reversed =
        Array2::from_shape_fn((n, n), |(i, j)| (h[[n - 1 - i, n - 1 - j]] / mean) as f32);
    let l = linalg::cholesky(reversed.view()).map_err(|e| {
        QuantError::param(
            "percdamp",
            "the given value",
            format!("the damped Hessian is not positive definite ({e}); raise the damping"),
        )
    })?;
    let l_inv = linalg::lower_triangular_inverse(l.mapv(f64::from).view())?;
    let scale = 1.0 / mean.sqrt();
    Ok(Array2::from_shape_fn((n, n), |(i, j)| l_inv[[n - 1 - i, n - 1 - j]] * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factor_of_the_inverse() {
        let a = Array2::from_shape_fn((6, 6), |(i, j)| ((i * 7 + j * 3) % 5) as f64 - 2.0);
        let h = a.t().dot(&a) + Array2::<f64>::eye(6) * 0.5;
        let u = inverse_cholesky_upper(&h).unwrap();
        assert!((0..6).all(|i| u[[i, i]] > 0.0 && (0..i).all(|j| u[[i, j]] == 0.0)));
        // Uᵀ U H = I.
        let p = u.t().dot(&u).dot(&h);
        let err = (&p - &Array2::<f64>::eye(6)).iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(err < 1e-4, "{err}");
        assert!(inverse_cholesky_upper(&(-h)).is_err());
    }
}
