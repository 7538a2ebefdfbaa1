//! Low-rank decompositions of convolution kernels, each turning one [`Conv2d`] into a short
//! chain of cheaper ordinary convolutions.
//!
//! | method | layers | use it when |
//! |---|---|---|
//! | [`separable`] (Jaderberg et al. 2014) | `kh x 1`, then `1 x kw` | the kernel is spatially large (5x5, 7x7) and channels are few |
//! | [`tucker2`] (Kim et al. 2015) | `1x1`, `kh x kw` core, `1x1` | channel counts are large (the usual choice for 3x3 layers) |
//! | [`cp`] (Lebedev et al. 2014) | `1x1`, depthwise `kh x 1`, depthwise `1 x kw`, `1x1` | the largest saving is wanted and fine-tuning will follow |
//!
//! Each method has a pure-tensor function (`separable`, `tucker2`, `cp`) that returns the
//! factors, for benchmarks and for callers with their own layer types, and a layer
//! function (`separable_conv`, `tucker2_conv`, `cp_conv`) that validates a [`Conv2d`] and
//! builds the replacement layers as a [`ConvFactorization`]. Stride, padding and dilation
//! are carried over so the chain computes exactly the convolution by the reconstructed
//! kernel. Grouped convolutions are refused: their kernel is block-diagonal over channels,
//! and decomposing it as one tensor would mix the groups.
//!
//! ```
//! use deepcompress_core::layer::{Conv2d, Conv2dConfig};
//! use deepcompress_lowrank::conv::{Tucker2Config, tucker2_conv};
//!
//! let conv = Conv2d::new(Conv2dConfig::new(20, 50, 5), 0)?;
//! let f = tucker2_conv("conv2", &conv, &Tucker2Config::new(12, 8))?;
//! assert_eq!(f.layers.len(), 3);
//! assert!(f.params_after < f.params_before);
//! # Ok::<(), deepcompress_lowrank::LowRankError>(())
//! ```

mod cp;
mod separable;
mod tucker;

pub use cp::{Cp, CpConfig, cp, cp_conv};
pub use separable::{Separable, separable, separable_conv};
pub use tucker::{Tucker2, Tucker2Config, tucker2, tucker2_conv};

use crate::error::{LowRankError, Result, check_finite};
use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer};
use deepcompress_core::linalg;
use deepcompress_core::ops::matmul_nt;
use ndarray::{Array1, Array2, Array4, ArrayView2, ArrayView4, s};

/// A convolution replaced by a chain of convolutions, with the cost of the replacement.
///
/// The layers, applied in order, compute the convolution by the reconstructed kernel;
/// the last one carries the original bias.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Mode};
/// use deepcompress_lowrank::conv::separable_conv;
/// use ndarray::ArrayD;
///
/// let conv = Conv2d::new(Conv2dConfig::new(3, 8, 5).padding(2), 1)?;
/// let f = separable_conv("features.0", &conv, 3)?;
/// assert_eq!(f.ranks, vec![3]);
/// assert!(f.relative_error < 1.0 && f.compression_ratio() > 1.0);
/// let mut x = ArrayD::zeros(vec![1, 3, 16, 16]);
/// for layer in &mut f.into_layers() {
///     x = layer.forward(x, Mode::Eval)?;
/// }
/// assert_eq!(x.shape(), &[1, 8, 16, 16]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct ConvFactorization {
    /// `"separable"`, `"tucker2"` or `"cp"`.
    pub method: &'static str,
    /// The replacement convolutions, first to last.
    pub layers: Vec<Conv2d>,
    /// Ranks: `[r]` for separable and CP, `[r_out, r_in]` for Tucker-2.
    pub ranks: Vec<usize>,
    /// Frobenius norm of `W - W_approx` over the kernel.
    pub kernel_error: f64,
    /// `kernel_error / ||W||_F` (0 for a zero kernel).
    pub relative_error: f64,
    /// Weights and biases of the original layer.
    pub params_before: usize,
    /// Weights and biases of the replacement layers.
    pub params_after: usize,
}

impl ConvFactorization {
    /// The layers as trait objects, ready for
    /// [`Model::replace_with_sequence`](deepcompress_core::Model::replace_with_sequence).
    ///
    /// ```
    /// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
    /// use deepcompress_lowrank::conv::{Tucker2Config, tucker2_conv};
    /// let conv = Conv2d::new(Conv2dConfig::new(4, 4, 3), 0)?;
    /// let layers = tucker2_conv("c", &conv, &Tucker2Config::new(2, 2))?.into_layers();
    /// assert!(layers.iter().all(|l| l.kind() == "Conv2d"));
    /// # Ok::<(), deepcompress_lowrank::LowRankError>(())
    /// ```
    pub fn into_layers(self) -> Vec<Box<dyn Layer>> {
        self.layers.into_iter().map(|l| Box::new(l) as Box<dyn Layer>).collect()
    }

    /// `params_before / params_after`.
    ///
    /// ```
    /// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
    /// use deepcompress_lowrank::conv::separable_conv;
    /// let conv = Conv2d::new(Conv2dConfig::new(16, 16, 7).bias(false), 0)?;
    /// // 16*16*49 weights against 4*16*7 + 16*4*7.
    /// let f = separable_conv("c", &conv, 4)?;
    /// assert!((f.compression_ratio() - 12544.0 / 896.0).abs() < 1e-9);
    /// # Ok::<(), deepcompress_lowrank::LowRankError>(())
    /// ```
    pub fn compression_ratio(&self) -> f64 {
        self.params_before as f64 / self.params_after.max(1) as f64
    }
}

/// The weight and bias of a convolution that a decomposition can take: one group,
/// finite values. Errors name `path`.
pub(crate) fn conv_parts(path: &str, conv: &Conv2d) -> Result<(Array4<f32>, Option<Array1<f32>>)> {
    let c = &conv.config;
    if c.groups != 1 {
        return Err(LowRankError::Unsupported {
            path: path.to_string(),
            kind: "Conv2d".to_string(),
            reason: format!(
                "grouped convolution (groups = {}, {} -> {} channels) is block-diagonal over \
                 channels; decompose each group separately or leave the layer as it is",
                c.groups, c.in_channels, c.out_channels
            ),
        });
    }
    let weight = conv.weight.effective();
    check_finite(weight.iter(), path, "weight")?;
    let bias = match &conv.bias {
        Some(b) => {
            check_finite(b.value().iter(), path, "bias")?;
            Some(b.value().iter().copied().collect::<Array1<f32>>())
        }
        None => None,
    };
    let shape = weight.shape().to_vec();
    let weight = weight.as_standard_layout().into_owned().into_dimensionality().map_err(|_| {
        LowRankError::Unsupported {
            path: path.to_string(),
            kind: "Conv2d".to_string(),
            reason: format!("weight of shape {shape:?} is not 4-D"),
        }
    })?;
    Ok((weight, bias))
}

/// `[N, C, kh, kw]` of a kernel view, for messages.
pub(crate) fn shape4(w: ArrayView4<f32>) -> [usize; 4] {
    let (n, c, h, k) = w.dim();
    [n, c, h, k]
}

/// Checks `1 <= value <= max`, naming the parameter, the bound's meaning and the kernel.
pub(crate) fn check_range(
    name: &str,
    value: usize,
    max: usize,
    bound: &str,
    path: &str,
    w: ArrayView4<f32>,
) -> Result<()> {
    if value == 0 || value > max {
        return Err(LowRankError::param(
            name,
            value,
            format!("must be in 1..={max} ({bound}) for `{path}` with kernel {:?}", shape4(w)),
        ));
    }
    Ok(())
}

/// The mode-`mode` unfolding: that axis as rows, the other three (in their order, last
/// fastest) as columns.
pub(crate) fn unfold(w: ArrayView4<f32>, mode: usize) -> Array2<f32> {
    let mut order = vec![mode];
    order.extend((0..4).filter(|&a| a != mode));
    let p = w.permuted_axes([order[0], order[1], order[2], order[3]]);
    let rows = p.shape()[0];
    let cols = p.len() / rows.max(1);
    p.as_standard_layout()
        .into_owned()
        .into_shape_with_order((rows, cols))
        .expect("a standard-layout array reshapes")
}

/// The entries of `a` in logical (row-major) order as a 4-D array of `shape`.
pub(crate) fn reshape4(a: ArrayView2<f32>, shape: (usize, usize, usize, usize)) -> Array4<f32> {
    Array4::from_shape_vec(shape, a.iter().copied().collect()).expect("same number of entries")
}

/// `(A + Aᵀ) / 2` of the Gram `A Aᵀ`: GEMM rounding leaves it slightly asymmetric.
pub(crate) fn gram(a: ArrayView2<f32>) -> Array2<f32> {
    let g = matmul_nt(a, a);
    (&g + &g.t()) * 0.5
}

/// The `r` leading eigenvectors (as columns, largest eigenvalue first) of a symmetric
/// positive semi-definite matrix, and all its eigenvalues in descending order.
pub(crate) fn leading_eigvecs(sym: ArrayView2<f32>, r: usize) -> Result<(Array2<f32>, Vec<f32>)> {
    let (w, v) = linalg::eigh(sym)?;
    let n = w.len();
    let vecs = v.slice(s![.., n - r..;-1]).as_standard_layout().into_owned();
    Ok((vecs, w.iter().rev().copied().collect()))
}

/// Frobenius norm in `f64`.
pub(crate) fn norm<'a>(values: impl IntoIterator<Item = &'a f32>) -> f64 {
    values.into_iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()
}

/// Frobenius norm of `a - b` in `f64`.
pub(crate) fn diff_norm<'a>(
    a: impl IntoIterator<Item = &'a f32>,
    b: impl IntoIterator<Item = &'a f32>,
) -> f64 {
    a.into_iter().zip(b).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum::<f64>().sqrt()
}

/// `err / total`, 0 when `total` is 0.
pub(crate) fn relative(err: f64, total: f64) -> f64 {
    if total > 0.0 { err / total } else { 0.0 }
}

/// Per-axis geometry of one layer of a chain.
#[derive(Clone, Copy)]
pub(crate) struct Geometry {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Geometry {
    /// A 1x1 convolution with stride 1 and no padding.
    pub fn pointwise() -> Self {
        Self { kernel: (1, 1), stride: (1, 1), padding: (0, 0), dilation: (1, 1), groups: 1 }
    }

    /// The vertical half of `c`: kernel `(kh, 1)` with the axis-0 stride, padding and dilation.
    pub fn vertical(c: &Conv2dConfig, groups: usize) -> Self {
        Self {
            kernel: (c.kernel.0, 1),
            stride: (c.stride.0, 1),
            padding: (c.padding.0, 0),
            dilation: (c.dilation.0, 1),
            groups,
        }
    }

    /// The horizontal half of `c`: kernel `(1, kw)` with the axis-1 stride, padding and dilation.
    pub fn horizontal(c: &Conv2dConfig, groups: usize) -> Self {
        Self {
            kernel: (1, c.kernel.1),
            stride: (1, c.stride.1),
            padding: (0, c.padding.1),
            dilation: (1, c.dilation.1),
            groups,
        }
    }

    /// The full spatial geometry of `c`.
    pub fn same_as(c: &Conv2dConfig) -> Self {
        Self {
            kernel: c.kernel,
            stride: c.stride,
            padding: c.padding,
            dilation: c.dilation,
            groups: 1,
        }
    }
}

/// A convolution with this geometry, weight `[out, in/groups, kh, kw]` and bias.
pub(crate) fn build_conv(
    g: Geometry,
    in_channels: usize,
    weight: Array4<f32>,
    bias: Option<Array1<f32>>,
) -> Result<Conv2d> {
    let config = Conv2dConfig {
        in_channels,
        out_channels: weight.shape()[0],
        kernel: g.kernel,
        stride: g.stride,
        padding: g.padding,
        dilation: g.dilation,
        groups: g.groups,
        bias: bias.is_some(),
    };
    Ok(Conv2d::from_weights(config, weight, bias)?)
}

/// Assembles a [`ConvFactorization`], counting parameters and the kernel error.
pub(crate) fn finish(
    method: &'static str,
    original: &Conv2d,
    layers: Vec<Conv2d>,
    ranks: Vec<usize>,
    kernel_error: f64,
    kernel_norm: f64,
) -> ConvFactorization {
    let count = |c: &Conv2d| c.weight.len() + c.bias.as_ref().map_or(0, |b| b.len());
    ConvFactorization {
        method,
        params_before: count(original),
        params_after: layers.iter().map(count).sum(),
        layers,
        ranks,
        kernel_error,
        relative_error: relative(kernel_error, kernel_norm),
    }
}
