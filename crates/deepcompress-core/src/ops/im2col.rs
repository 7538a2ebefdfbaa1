//! im2col / col2im for 2-D convolution: a convolution becomes one GEMM per image.

use ndarray::{ArrayView3, ArrayViewMut2, ArrayViewMut3};

/// Geometry of a 2-D convolution over one image (one group's channels).
///
/// ```
/// use deepcompress_core::ops::ConvGeometry;
/// let g = ConvGeometry { channels: 20, in_hw: (12, 12), kernel: (5, 5), stride: (1, 1),
///                        padding: (0, 0), dilation: (1, 1) };
/// assert_eq!((g.col_rows(), g.out_hw()), (500, Some((8, 8))));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels read by the convolution (one group's worth).
    pub channels: usize,
    /// Input height and width.
    pub in_hw: (usize, usize),
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride along height and width.
    pub stride: (usize, usize),
    /// Zero padding along height and width.
    pub padding: (usize, usize),
    /// Dilation along height and width.
    pub dilation: (usize, usize),
}

impl ConvGeometry {
    /// Output height and width, or `None` when the kernel does not fit the padded input.
    ///
    /// ```
    /// use deepcompress_core::ops::ConvGeometry;
    /// let g = ConvGeometry { channels: 1, in_hw: (28, 28), kernel: (5, 5), stride: (1, 1),
    ///                        padding: (0, 0), dilation: (1, 1) };
    /// assert_eq!(g.out_hw(), Some((24, 24)));
    /// ```
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let dim = |n: usize, k: usize, s: usize, p: usize, d: usize| {
            let span = d.checked_mul(k.checked_sub(1)?)?.checked_add(1)?;
            let padded = n.checked_add(2 * p)?;
            if s == 0 || padded < span {
                return None;
            }
            Some((padded - span) / s + 1)
        };
        Some((
            dim(self.in_hw.0, self.kernel.0, self.stride.0, self.padding.0, self.dilation.0)?,
            dim(self.in_hw.1, self.kernel.1, self.stride.1, self.padding.1, self.dilation.1)?,
        ))
    }

    /// Rows of the column matrix: `channels * kh * kw`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kernel.0 * self.kernel.1
    }
}

/// Fills `cols` (`[channels*kh*kw, oh*ow]`) with the patches of `img` (`[channels, h, w]`).
///
/// ```
/// use deepcompress_core::ops::{im2col, ConvGeometry};
/// use ndarray::{Array2, Array3};
/// let img = Array3::from_shape_fn((1, 3, 3), |(_, i, j)| (3 * i + j) as f32);
/// let g = ConvGeometry { channels: 1, in_hw: (3, 3), kernel: (2, 2), stride: (1, 1),
///                        padding: (0, 0), dilation: (1, 1) };
/// let mut cols = Array2::zeros((4, 4));
/// im2col(img.view(), &g, cols.view_mut());
/// assert_eq!(cols.row(0).to_vec(), vec![0.0, 1.0, 3.0, 4.0]); // top-left tap
/// ```
pub fn im2col(img: ArrayView3<f32>, g: &ConvGeometry, mut cols: ArrayViewMut2<f32>) {
    let (oh, ow) = g.out_hw().expect("im2col: kernel larger than padded input");
    let (h, w) = g.in_hw;
    let (kh, kw) = g.kernel;
    for c in 0..g.channels {
        let plane = img.index_axis(ndarray::Axis(0), c);
        for ki in 0..kh {
            for kj in 0..kw {
                let row = (c * kh + ki) * kw + kj;
                let mut dst = cols.row_mut(row);
                let dst = dst.as_slice_mut().expect("cols rows are contiguous");
                for oi in 0..oh {
                    let i = (oi * g.stride.0 + ki * g.dilation.0) as isize - g.padding.0 as isize;
                    let out = &mut dst[oi * ow..(oi + 1) * ow];
                    if i < 0 || i as usize >= h {
                        out.fill(0.0);
                        continue;
                    }
                    let src = plane.row(i as usize);
                    let (lo, hi) = valid_cols(g, kj, w, ow);
                    out[..lo].fill(0.0);
                    out[hi..].fill(0.0);
                    let first =
                        (lo * g.stride.1 + kj * g.dilation.1) as isize - g.padding.1 as isize;
                    match (g.stride.1, src.as_slice()) {
                        // Unit stride: the valid taps are one contiguous run of the row.
                        (1, Some(src)) => out[lo..hi]
                            .copy_from_slice(&src[first as usize..first as usize + hi - lo]),
                        _ => {
                            for (k, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = src[first as usize + k * g.stride.1];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Output columns `lo..hi` whose input column `oj*stride + kj*dilation - padding` falls
/// inside `0..w`.
fn valid_cols(g: &ConvGeometry, kj: usize, w: usize, ow: usize) -> (usize, usize) {
    let offset = (kj * g.dilation.1) as isize - g.padding.1 as isize;
    let s = g.stride.1 as isize;
    // Smallest oj with oj*s + offset >= 0, and first oj with oj*s + offset >= w.
    let lo = if offset >= 0 { 0 } else { ((-offset + s - 1) / s) as usize };
    let hi = if (w as isize) <= offset { 0 } else { ((w as isize - offset + s - 1) / s) as usize };
    (lo.min(ow), hi.min(ow).max(lo.min(ow)))
}

/// Adds the columns back into an image gradient (`col2im`, the adjoint of [`im2col`]).
///
/// ```
/// use deepcompress_core::ops::{col2im_add, ConvGeometry};
/// use ndarray::{Array2, Array3};
/// let g = ConvGeometry { channels: 1, in_hw: (3, 3), kernel: (2, 2), stride: (1, 1),
///                        padding: (0, 0), dilation: (1, 1) };
/// let cols = Array2::ones((4, 4));
/// let mut img = Array3::zeros((1, 3, 3));
/// col2im_add(cols.view(), &g, img.view_mut());
/// assert_eq!(img[[0, 1, 1]], 4.0); // the centre is covered by all four patches
/// ```
pub fn col2im_add(cols: ndarray::ArrayView2<f32>, g: &ConvGeometry, mut img: ArrayViewMut3<f32>) {
    let (oh, ow) = g.out_hw().expect("col2im: kernel larger than padded input");
    let (h, w) = g.in_hw;
    let (kh, kw) = g.kernel;
    for c in 0..g.channels {
        let mut plane = img.index_axis_mut(ndarray::Axis(0), c);
        for ki in 0..kh {
            for kj in 0..kw {
                let src = cols.row((c * kh + ki) * kw + kj);
                for oi in 0..oh {
                    let i = (oi * g.stride.0 + ki * g.dilation.0) as isize - g.padding.0 as isize;
                    if i < 0 || i as usize >= h {
                        continue;
                    }
                    let mut dst = plane.row_mut(i as usize);
                    let (lo, hi) = valid_cols(g, kj, w, ow);
                    let first =
                        (lo * g.stride.1 + kj * g.dilation.1) as isize - g.padding.1 as isize;
                    let base = first as usize;
                    let fast =
                        if g.stride.1 == 1 { src.as_slice().zip(dst.as_slice_mut()) } else { None };
                    match fast {
                        // Unit stride: the valid taps are one contiguous run of the row.
                        Some((src, dst)) => {
                            let src = &src[oi * ow + lo..oi * ow + hi];
                            for (d, v) in dst[base..base + hi - lo].iter_mut().zip(src) {
                                *d += v;
                            }
                        }
                        None => {
                            for k in 0..hi - lo {
                                dst[base + k * g.stride.1] += src[oi * ow + lo + k];
                            }
                        }
                    }
                }
            }
        }
    }
}
