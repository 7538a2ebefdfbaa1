//! A Conv2d becomes a `kh x kw` convolution onto `r` channels followed by a 1x1
//! convolution back to `out`: the SVD of the `[out, in*kh*kw]` matrix the convolution
//! multiplies im2col patches by (the channel decomposition of Zhang et al. 2015,
//! arXiv 1411.4229, and the form the data-aware variant needs).

use super::linear::factorize_matrix;
use super::{Factored, count_params};
use crate::error::{LowRankError, Result};
use crate::whiten::Whitening;
use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer};
use ndarray::{Array2, Array4, Ix1};

/// Factorises `conv` at rank `rank`: `[Conv2d(in -> r, kh x kw, same stride/padding/
/// dilation, no bias), Conv2d(r -> out, 1x1, bias)]`.
///
/// With `whitening` (from [`InputGram::from_conv_inputs`](crate::whiten::InputGram::from_conv_inputs))
/// the output error on the calibration images is minimised. Grouped convolutions are
/// refused; rank must be in `1..=min(out, in*kh*kw)`.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_lowrank::factor::factor_conv;
///
/// let conv = Conv2d::new(Conv2dConfig::new(20, 50, 5), 0)?;
/// let f = factor_conv("conv2", &conv, 10, None)?;
/// assert_eq!(f.params_after, 10 * 20 * 25 + 50 * 10 + 50);
/// let depthwise = Conv2d::new(Conv2dConfig::new(8, 8, 3).groups(8), 0)?;
/// assert!(factor_conv("dw", &depthwise, 2, None).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn factor_conv(
    path: &str,
    conv: &Conv2d,
    rank: usize,
    whitening: Option<&Whitening>,
) -> Result<Factored> {
    let w = conv_matrix(conv, path)?;
    let (a, b, error, relative_error) = factorize_matrix(&w, rank, whitening, path)?;
    let layers = conv_pair(conv, a, b, path)?;
    Ok(Factored {
        params_after: count_params(&layers),
        params_before: conv.params().iter().map(|(_, p)| p.len()).sum(),
        layers,
        rank,
        error,
        relative_error,
    })
}

/// The two convolutions for factors `A` (`out x r`) and `B` (`r x in*kh*kw`).
pub(crate) fn conv_pair(
    conv: &Conv2d,
    a: Array2<f32>,
    b: Array2<f32>,
    path: &str,
) -> Result<Vec<Box<dyn Layer>>> {
    let c = conv.config;
    let rank = b.nrows();
    let (kh, kw) = c.kernel;
    let first_w =
        Array4::from_shape_vec((rank, c.in_channels, kh, kw), b.iter().copied().collect())
            .expect("B is rank x in*kh*kw");
    let first = Conv2dConfig { out_channels: rank, bias: false, ..c };
    let second = Conv2dConfig {
        in_channels: rank,
        kernel: (1, 1),
        stride: (1, 1),
        padding: (0, 0),
        dilation: (1, 1),
        ..c
    };
    let bias = match &conv.bias {
        Some(b) => Some(b.value().clone().into_dimensionality::<Ix1>().map_err(|_| {
            deepcompress_core::CoreError::shape(path, "a 1-D bias", b.value().shape())
        })?),
        None => None,
    };
    let second_w = a.into_shape_with_order((c.out_channels, rank, 1, 1)).expect("A is out x rank");
    Ok(vec![
        Box::new(Conv2d::from_weights(first, first_w, None)?),
        Box::new(Conv2d::from_weights(second, second_w, bias)?),
    ])
}

/// The weight as `[out, in*kh*kw]`; grouped convolutions are refused.
pub(crate) fn conv_matrix(conv: &Conv2d, path: &str) -> Result<Array2<f32>> {
    let c = conv.config;
    if c.groups != 1 {
        return Err(LowRankError::Unsupported {
            path: path.to_string(),
            kind: "Conv2d".into(),
            reason: format!(
                "grouped convolution (groups = {}): each group would need its own factors",
                c.groups
            ),
        });
    }
    let w = conv.weight.value();
    let cols = w.len() / c.out_channels.max(1);
    Ok(w.to_shape((c.out_channels, cols))
        .map_err(|_| deepcompress_core::CoreError::shape(path, "a 4-D weight", w.shape()))?
        .to_owned())
}
