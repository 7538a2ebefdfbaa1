//! Spatially separable decomposition (Jaderberg, Vedaldi and Zisserman 2014,
//! "Speeding up Convolutional Neural Networks with Low Rank Expansions", arXiv 1405.3866,
//! scheme 2).

use super::{ConvFactorization, Geometry, build_conv, check_range, conv_parts, finish, shape4};
use crate::error::{Result, check_finite};
use crate::svd::truncated_svd;
use deepcompress_core::layer::Conv2d;
use deepcompress_core::ops::matmul;
use ndarray::{Array1, Array4, ArrayView4};

/// A kernel `W[n, c, y, x] ≈ Σ_k V[k, c, y] H[n, k, x]`: a vertical `kh x 1` convolution
/// `C -> r` followed by a horizontal `1 x kw` convolution `r -> N`.
///
/// Scheme 2 of Jaderberg, Vedaldi and Zisserman (2014, arXiv 1405.3866): the matrix
/// `M[(c, y), (n, x)] = W[n, c, y, x]` is factorised by a truncated SVD, so the result is
/// the best such pair in Frobenius norm and its error is known exactly. Use it for
/// spatially large kernels (5x5 and up) where the `kh + kw` versus `kh * kw` saving
/// matters; for 3x3 kernels with many channels Tucker-2 usually saves more.
///
/// ```
/// use deepcompress_lowrank::conv::separable;
/// use ndarray::Array4;
///
/// // An outer product of a vertical and a horizontal profile is exactly separable.
/// let w = Array4::from_shape_fn((2, 3, 5, 5), |(n, c, y, x)| {
///     (n + 1) as f32 * (c + 1) as f32 * (y as f32 - 2.0) * (x as f32 + 1.0)
/// });
/// let s = separable(w.view(), 1)?;
/// assert_eq!((s.vertical.dim(), s.horizontal.dim()), ((1, 3, 5, 1), (2, 1, 1, 5)));
/// assert!(s.relative_error() < 1e-6);
/// assert!((&s.reconstruct() - &w).iter().all(|d| d.abs() < 1e-3));
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Separable {
    /// Vertical filters `[r, C, kh, 1]`, scaled by `sqrt(sigma_k)`.
    pub vertical: Array4<f32>,
    /// Horizontal filters `[N, r, 1, kw]`, scaled by `sqrt(sigma_k)`.
    pub horizontal: Array4<f32>,
    /// Every singular value of `M`, descending (length `min(C kh, N kw)`).
    pub spectrum: Array1<f32>,
}

impl Separable {
    /// The rank `r`.
    pub fn rank(&self) -> usize {
        self.vertical.shape()[0]
    }

    /// Frobenius error of the kernel, `sqrt(sum of the dropped sigma^2)` (Eckart–Young).
    pub fn error(&self) -> f64 {
        self.spectrum.iter().skip(self.rank()).map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()
    }

    /// [`error`](Self::error) divided by `||W||_F` (0 for a zero kernel).
    pub fn relative_error(&self) -> f64 {
        let total = self.spectrum.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
        super::relative(self.error(), total)
    }

    /// The approximated kernel `[N, C, kh, kw]`.
    pub fn reconstruct(&self) -> Array4<f32> {
        let (r, c, kh, _) = self.vertical.dim();
        let (n, _, _, kw) = self.horizontal.dim();
        // [(c, y), k] x [k, (n, x)] gives M, then back to [n, c, y, x].
        let v = self.vertical.view().into_shape_with_order((r, c * kh)).expect("standard");
        let h = self.horizontal.view().permuted_axes([1, 0, 2, 3]);
        let h = h.as_standard_layout();
        let h = h.view().into_shape_with_order((r, n * kw)).expect("standard");
        let m = matmul(v.t(), h);
        m.into_shape_with_order((c, kh, n, kw))
            .expect("standard")
            .permuted_axes([2, 0, 1, 3])
            .as_standard_layout()
            .into_owned()
    }
}

/// Spatially separable rank-`rank` factorisation of a kernel `[N, C, kh, kw]`
/// (Jaderberg et al. 2014, arXiv 1405.3866, scheme 2); see [`Separable`].
///
/// Errors: `rank` outside `1..=min(C kh, N kw)`, NaN or infinity in the kernel.
///
/// ```
/// use deepcompress_lowrank::conv::separable;
/// use ndarray::Array4;
/// let w = Array4::from_shape_fn((4, 2, 3, 3), |(n, c, y, x)| ((n * 7 + c * 5 + y * 3 + x) % 5) as f32);
/// // Full rank min(2*3, 4*3) = 6 is exact.
/// assert!(separable(w.view(), 6)?.error() < 1e-4);
/// assert!(separable(w.view(), 7).is_err());
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn separable(weight: ArrayView4<f32>, rank: usize) -> Result<Separable> {
    separable_at("separable", weight, rank)
}

fn separable_at(path: &str, w: ArrayView4<f32>, rank: usize) -> Result<Separable> {
    let [n, c, kh, kw] = shape4(w);
    check_range("rank", rank, (c * kh).min(n * kw), "min(C*kh, N*kw)", path, w)?;
    check_finite(w.iter(), path, "weight")?;
    // M[(c, y), (n, x)]: axes [c, y, n, x].
    let m = w.permuted_axes([1, 2, 0, 3]).as_standard_layout().into_owned();
    let m = m.into_shape_with_order((c * kh, n * kw)).expect("standard");
    let t = truncated_svd(m.view(), rank)?;
    // Balanced split: each half carries sqrt(sigma), so both layers keep a similar scale.
    let (a, b) = t.factors();
    let vertical = a
        .reversed_axes()
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order((rank, c, kh, 1))
        .expect("standard");
    let horizontal = b
        .into_shape_with_order((rank, n, 1, kw))
        .expect("standard")
        .permuted_axes([1, 0, 2, 3])
        .as_standard_layout()
        .into_owned();
    Ok(Separable { vertical, horizontal, spectrum: t.spectrum })
}

/// Replaces a convolution by a vertical `kh x 1` convolution `C -> rank` and a horizontal
/// `1 x kw` convolution `rank -> N` (Jaderberg et al. 2014, arXiv 1405.3866, scheme 2).
///
/// The vertical layer takes the axis-0 stride, padding and dilation, the horizontal one
/// those of axis 1, and the bias; the chain then equals the convolution by
/// [`Separable::reconstruct`]. `kernel_error` is exact (the dropped singular values).
///
/// Errors: a grouped convolution ([`Unsupported`](crate::LowRankError::Unsupported)),
/// `rank` outside `1..=min(C kh, N kw)`, NaN or infinity in the weight or bias; each names
/// `path`.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_lowrank::conv::separable_conv;
/// let conv = Conv2d::new(Conv2dConfig::new(1, 20, 5), 0)?;
/// let f = separable_conv("conv1", &conv, 5)?;
/// // min(C kh, N kw) = 5: full rank, so exact.
/// assert!(f.relative_error < 1e-5);
/// assert_eq!(f.layers[0].config.kernel, (5, 1));
/// assert_eq!(f.layers[1].config.kernel, (1, 5));
/// # Ok::<(), deepcompress_lowrank::LowRankError>(())
/// ```
pub fn separable_conv(path: &str, conv: &Conv2d, rank: usize) -> Result<ConvFactorization> {
    let (w, bias) = conv_parts(path, conv)?;
    let s = separable_at(path, w.view(), rank)?;
    let c = &conv.config;
    let first = build_conv(Geometry::vertical(c, 1), c.in_channels, s.vertical.clone(), None)?;
    let second = build_conv(Geometry::horizontal(c, 1), rank, s.horizontal.clone(), bias)?;
    let total = s.spectrum.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    Ok(finish("separable", conv, vec![first, second], vec![rank], s.error(), total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Axis;

    #[test]
    fn factors_have_balanced_scale() {
        let w = Array4::from_shape_fn((6, 4, 3, 3), |(n, c, y, x)| {
            ((n * 13 + c * 7 + y * 5 + x * 3) % 11) as f32 - 5.0
        });
        let s = separable(w.view(), 3).unwrap();
        // Each component's vertical and horizontal parts have the same norm, sqrt(sigma_k).
        for k in 0..3 {
            let v = super::super::norm(s.vertical.index_axis(Axis(0), k).iter());
            let h = super::super::norm(s.horizontal.index_axis(Axis(1), k).iter());
            let sigma = f64::from(s.spectrum[k]);
            assert!((v - sigma.sqrt()).abs() < 1e-4 * sigma.sqrt(), "{v} vs {sigma}");
            assert!((h - v).abs() < 1e-4 * v);
        }
    }
}
