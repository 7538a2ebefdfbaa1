//! [`Hessian`]: the GPTQ layer-wise Hessian `H = 2 X Xᵀ / n` built from calibration inputs.

use crate::error::{QuantError, Result};
use deepcompress_core::layer::Conv2dConfig;
use deepcompress_core::ops::{ConvGeometry, im2col, matmul_nt, matmul_tn};
use ndarray::{Array2, ArrayView2, ArrayView4, Axis};

/// The Hessian of the layer-wise squared output error `||W X - Q X||²_F` with respect to
/// one row of the weight: `H = 2 X Xᵀ / n`, where the columns of `X` are the `n` input
/// vectors a layer saw on calibration data (Frantar et al., "GPTQ", 2022, arXiv 2210.17323).
///
/// A Linear's input vectors are the rows of its `[batch, in]` input; a Conv2d's are the
/// im2col patches of its `[batch, c, h, w]` input (one per output position), ordered
/// `(channel, kernel row, kernel column)` like the kernel's `[out, in*kh*kw]` view, so
/// the convolution is the matrix product the Hessian describes. Sums are kept in `f64`;
/// batches can be added one at a time.
///
/// ```
/// use deepcompress_quant::gptq::Hessian;
/// use ndarray::array;
/// let mut h = Hessian::new(2);
/// h.add_rows(array![[1.0_f32, 0.0], [1.0, 2.0]].view(), "fc1")?;
/// assert_eq!(h.samples(), 2);
/// assert_eq!(h.matrix(), array![[2.0, 2.0], [2.0, 4.0]]); // 2/2 * Σ x xᵀ
/// assert!(h.add_rows(array![[1.0_f32, 2.0, 3.0]].view(), "fc1").is_err()); // wrong width
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Hessian {
    sum: Array2<f64>,
    samples: usize,
}

impl Hessian {
    /// An empty Hessian for inputs of dimension `n`.
    pub fn new(n: usize) -> Self {
        Self { sum: Array2::zeros((n, n)), samples: 0 }
    }

    /// From a Linear layer's inputs `[batch, in]`; `path` names the layer in errors.
    pub fn from_rows(x: ArrayView2<f32>, path: &str) -> Result<Self> {
        let mut h = Self::new(x.ncols());
        h.add_rows(x, path)?;
        Ok(h)
    }

    /// From a Conv2d layer's inputs `[batch, channels, h, w]` (im2col patches).
    pub fn from_conv_inputs(x: ArrayView4<f32>, conv: &Conv2dConfig, path: &str) -> Result<Self> {
        let mut h = Self::new(conv.in_channels * conv.kernel.0 * conv.kernel.1);
        h.add_conv_inputs(x, conv, path)?;
        Ok(h)
    }

    /// Input dimension.
    pub fn dim(&self) -> usize {
        self.sum.nrows()
    }

    /// Input vectors accumulated so far.
    pub fn samples(&self) -> usize {
        self.samples
    }

    /// `H = 2 Σ x xᵀ / n` (zero when nothing was added).
    pub fn matrix(&self) -> Array2<f64> {
        if self.samples == 0 {
            return self.sum.clone();
        }
        let s = 2.0 / self.samples as f64;
        self.sum.mapv(|v| v * s)
    }

    /// Adds a batch of Linear inputs `[batch, in]`.
    pub fn add_rows(&mut self, x: ArrayView2<f32>, path: &str) -> Result<()> {
        check_finite(x.iter(), path)?;
        if x.ncols() != self.dim() {
            return Err(deepcompress_core::CoreError::shape(
                format!("calibration input of `{path}`"),
                format!("[batch, {}]", self.dim()),
                x.shape(),
            )
            .into());
        }
        self.sum += &matmul_tn(x, x).mapv(f64::from);
        self.samples += x.nrows();
        Ok(())
    }

    /// Adds a batch of Conv2d inputs `[batch, channels, h, w]` as im2col patches.
    /// Grouped convolutions are refused.
    pub fn add_conv_inputs(
        &mut self,
        x: ArrayView4<f32>,
        conv: &Conv2dConfig,
        path: &str,
    ) -> Result<()> {
        if conv.groups != 1 {
            return Err(QuantError::param(
                format!("groups of `{path}`"),
                conv.groups,
                "GPTQ handles ungrouped convolutions only",
            ));
        }
        check_finite(x.iter(), path)?;
        let (_, c, h, w) = x.dim();
        let geo = ConvGeometry {
            channels: c,
            in_hw: (h, w),
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            dilation: conv.dilation,
        };
        let out_hw = geo.out_hw();
        if c != conv.in_channels || geo.col_rows() != self.dim() || out_hw.is_none() {
            return Err(deepcompress_core::CoreError::shape(
                format!("calibration input of `{path}`"),
                format!("[batch, {}, h, w] the {:?} kernel fits", conv.in_channels, conv.kernel),
                x.shape(),
            )
            .into());
        }
        let (oh, ow) = out_hw.unwrap_or((0, 0));
        let mut cols = Array2::<f32>::zeros((geo.col_rows(), oh * ow));
        for img in x.axis_iter(Axis(0)) {
            im2col(img, &geo, cols.view_mut());
            self.sum += &matmul_nt(cols.view(), cols.view()).mapv(f64::from);
        }
        self.samples += x.len_of(Axis(0)) * oh * ow;
        Ok(())
    }
}

fn check_finite<'a>(mut values: impl Iterator<Item = &'a f32>, path: &str) -> Result<()> {
    if values.any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: format!("calibration input of `{path}`") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array4;

    #[test]
    fn conv_hessian_matches_explicit_patches() {
        let x = Array4::from_shape_fn((2, 2, 4, 4), |(b, c, i, j)| {
            ((b * 31 + c * 7 + i * 5 + j * 3) % 11) as f32 - 5.0
        });
        let conv = Conv2dConfig::new(2, 3, 3);
        let h = Hessian::from_conv_inputs(x.view(), &conv, "conv").unwrap();
        assert_eq!(h.samples(), 2 * 2 * 2);
        let mut want = Array2::<f64>::zeros((18, 18));
        for b in 0..2 {
            for (oi, oj) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let q: Vec<f64> = (0..18)
                    .map(|r| f64::from(x[[b, r / 9, oi + (r % 9) / 3, oj + r % 3]]))
                    .collect();
                for i in 0..18 {
                    for j in 0..18 {
                        want[[i, j]] += q[i] * q[j];
                    }
                }
            }
        }
        let got = h.matrix();
        assert!((&got - &want.mapv(|v| v * 2.0 / 8.0)).iter().all(|d| d.abs() < 1e-6));
    }
}
