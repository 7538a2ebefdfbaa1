//! A Linear `y = W x + b` becomes `y = A (B x) + b`: two Linears of rank `r`.

use super::Decomposed;
use super::{Factored, count_params};
use crate::error::Result;
use crate::whiten::Whitening;
use deepcompress_core::layer::{Layer, Linear};
use ndarray::{Array1, Array2, Ix1, Ix2};

/// Factorises `lin` at rank `rank` into `[Linear(in -> r, no bias), Linear(r -> out, bias)]`.
///
/// Without `whitening` this is the truncated SVD (Denton et al. 2014, arXiv 1404.0736):
/// the best approximation of the weight. With it, the best approximation of the layer's
/// outputs on the calibration data (see [`crate::whiten`]). `path` names the layer in
/// errors. Errors: rank outside `1..=min(out, in)`, NaN or infinite weights.
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear};
/// use deepcompress_lowrank::factor::factor_linear;
///
/// let fc = Linear::new(784, 300, true, 0);
/// let f = factor_linear("fc1", &fc, 32, None)?;
/// assert_eq!(f.layers.len(), 2);
/// assert_eq!(f.params_after, 32 * 784 + 300 * 32 + 300);
/// assert!(f.param_ratio() < 0.15);
/// assert!(factor_linear("fc1", &fc, 301, None).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn factor_linear(
    path: &str,
    lin: &Linear,
    rank: usize,
    whitening: Option<&Whitening>,
) -> Result<Factored> {
    let w = weight(lin, path)?;
    let bias = bias(lin)?;
    let (a, b, error, relative_error) = factorize_matrix(&w, rank, whitening, path)?;
    let layers = linear_pair(a, b, bias)?;
    Ok(Factored {
        params_after: count_params(&layers),
        params_before: lin.params().iter().map(|(_, p)| p.len()).sum(),
        layers,
        rank,
        error,
        relative_error,
    })
}

/// `W ≈ A B` at `rank`, plain or whitened, with the absolute and relative error.
pub(crate) fn factorize_matrix(
    w: &Array2<f32>,
    rank: usize,
    whitening: Option<&Whitening>,
    path: &str,
) -> Result<(Array2<f32>, Array2<f32>, f64, f64)> {
    Decomposed::new(w, whitening, path)?.truncate(rank, path)
}

/// Prefixes a parameter error with the layer it concerns.
pub(crate) fn at_layer(e: crate::LowRankError, path: &str) -> crate::LowRankError {
    match e {
        crate::LowRankError::InvalidParam { name, value, reason } => {
            crate::LowRankError::InvalidParam { name: format!("{name} of `{path}`"), value, reason }
        }
        other => other,
    }
}

pub(crate) fn weight(lin: &Linear, path: &str) -> Result<Array2<f32>> {
    let w = lin.weight.value().clone().into_dimensionality::<Ix2>().map_err(|_| {
        deepcompress_core::CoreError::shape(path, "a 2-D weight", lin.weight.value().shape())
    })?;
    Ok(w)
}

pub(crate) fn bias(lin: &Linear) -> Result<Option<Array1<f32>>> {
    Ok(match &lin.bias {
        Some(b) => Some(b.value().clone().into_dimensionality::<Ix1>().map_err(|_| {
            deepcompress_core::CoreError::shape("Linear bias", "a 1-D bias", b.value().shape())
        })?),
        None => None,
    })
}

/// `[Linear(in -> r) with weight B, Linear(r -> out) with weight A and the bias]`.
pub(crate) fn linear_pair(
    a: Array2<f32>,
    b: Array2<f32>,
    bias: Option<Array1<f32>>,
) -> Result<Vec<Box<dyn Layer>>> {
    Ok(vec![Box::new(Linear::from_weights(b, None)?), Box::new(Linear::from_weights(a, bias)?)])
}
