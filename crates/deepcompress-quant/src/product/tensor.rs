//! [`ProductTensor`]: a Linear weight stored as product-quantization codes and codebooks.

use super::config::ProductConfig;
use super::kmeans::kmeans;
use crate::error::{QuantError, Result};
use crate::pack::Packed;
use deepcompress_core::ops::matmul;
use deepcompress_core::tensor::Tensor;
use ndarray::{Array2, ArrayD, ArrayView2, s};
use rayon::prelude::*;
use std::any::Any;

/// A `[out, in]` weight compressed by product quantization (Gong, Liu, Yang and Bourdev,
/// "Compressing Deep Convolutional Networks using Vector Quantization", 2014, arXiv
/// 1412.6115).
///
/// The input dimension is split into `in / d` subspaces of `d` consecutive columns (Gong
/// et al.'s column-wise split of `W` into sub-matrices); in each subspace the `out`
/// sub-vectors of length `d` (one per row) are clustered by k-means into a codebook of
/// `k` centroids, and each sub-vector is replaced by the index of its centroid. Storage
/// is exact: the codes packed at `ceil(log2 k)` bits each (rounded up to whole bytes) plus
/// the codebooks in `f32`, `in/d · k · d` values. When a layer has fewer rows than `k`,
/// each subspace keeps `out` centroids (every sub-vector its own: exact).
///
/// [`Tensor::matmul`] uses the codebooks directly: per subspace it multiplies the `k`
/// centroids by the matching `d` rows of the input once, then each output row adds the
/// entry of its code — `k·d + out` multiply-adds per subspace and input column instead of
/// `out·d`.
///
/// Use it for large fully connected layers when 1 to 2 bits per weight are wanted and a
/// little accuracy can be given up; it does not need data. Larger `k` or smaller `d`
/// cost more bits and lose less.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::product::{ProductConfig, ProductTensor};
/// use ndarray::Array2;
///
/// let w = Array2::from_shape_fn((64, 32), |(i, j)| ((i * 7 + j * 3) % 13) as f32 / 13.0 - 0.5);
/// let pq = ProductTensor::quantize(w.view(), &ProductConfig::new(4, 16), 0)?;
/// // 64 rows x 8 subspaces of 4-bit codes, plus 8 codebooks of 16 x 4 f32.
/// assert_eq!(pq.storage_bits(), 64 * 8 * 4 + 8 * 16 * 4 * 32);
/// assert_eq!(pq.shape(), &[64, 32]);
/// let x = Array2::from_shape_fn((32, 3), |(i, j)| (i + j) as f32 / 32.0);
/// let via_codebook = pq.matmul(x.view())?;
/// let dense = pq.to_dense().into_dimensionality::<ndarray::Ix2>().unwrap().dot(&x);
/// assert!((&via_codebook - &dense).iter().all(|d| d.abs() < 1e-4));
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProductTensor {
    shape: [usize; 2],
    dim: usize,
    centroids: usize,
    /// `[subspace][centroid][d]`, flattened.
    codebooks: Vec<f32>,
    /// Row-major `[out, in / d]`.
    codes: Packed,
}

impl ProductTensor {
    /// Product-quantizes `w` (`[out, in]`) with sub-vectors of `config.dim` columns and
    /// `config.centroids` centroids per subspace; `seed` drives the k-means++ seeding
    /// (subspace `j` uses a seed derived from `seed` and `j`, so the result does not
    /// depend on the thread count).
    ///
    /// Errors: invalid config, `d` not dividing `in`, an empty weight, NaN or infinity.
    pub fn quantize(w: ArrayView2<f32>, config: &ProductConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let (rows, cols) = w.dim();
        if rows == 0 || cols == 0 {
            return Err(QuantError::param("weight shape", format!("{:?}", w.shape()), "is empty"));
        }
        if cols % config.dim != 0 {
            return Err(QuantError::param(
                "sub-vector dimension d",
                config.dim,
                format!("must divide the input dimension {cols}"),
            ));
        }
        if w.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: "the weight to product-quantize".into() });
        }
        let d = config.dim;
        let spaces = cols / d;
        let k = config.centroids.min(rows);
        let per_space: Vec<(Array2<f32>, Vec<usize>)> = (0..spaces)
            .into_par_iter()
            .map(|j| {
                let sub = w.slice(s![.., j * d..(j + 1) * d]);
                let s = seed ^ (j as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                kmeans(sub, k, config.iterations, s)
            })
            .collect();
        let mut codebooks = Vec::with_capacity(spaces * k * d);
        for (c, _) in &per_space {
            codebooks.extend(c.iter().copied());
        }
        let codes: Vec<u16> =
            (0..rows).flat_map(|i| per_space.iter().map(move |(_, a)| a[i] as u16)).collect();
        let bits = code_bits(k);
        Ok(Self {
            shape: [rows, cols],
            dim: d,
            centroids: k,
            codebooks,
            codes: Packed::pack(&codes, bits)?,
        })
    }

    /// Sub-vector dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Centroids per subspace (the configured `k`, or the row count if smaller).
    pub fn centroids(&self) -> usize {
        self.centroids
    }

    /// Bits per code, `ceil(log2 k)` (at least 1).
    pub fn code_bits(&self) -> u8 {
        self.codes.bits()
    }

    /// The codebook of subspace `j`, `[k, d]`.
    pub fn codebook(&self, j: usize) -> ArrayView2<'_, f32> {
        let n = self.centroids * self.dim;
        ArrayView2::from_shape((self.centroids, self.dim), &self.codebooks[j * n..(j + 1) * n])
            .expect("codebook length")
    }

    fn spaces(&self) -> usize {
        self.shape[1] / self.dim
    }

    fn decode(&self) -> Array2<f32> {
        let codes = self.codes.unpack();
        let (d, m) = (self.dim, self.spaces());
        let mut w = Array2::<f32>::zeros((self.shape[0], self.shape[1]));
        for i in 0..self.shape[0] {
            for j in 0..m {
                let c = codes[i * m + j] as usize;
                w.slice_mut(s![i, j * d..(j + 1) * d]).assign(&self.codebook(j).row(c));
            }
        }
        w
    }
}

/// `ceil(log2 k)`, at least 1 (a packed code has at least one bit).
fn code_bits(k: usize) -> u8 {
    (usize::BITS - (k.max(2) - 1).leading_zeros()) as u8
}

impl Tensor for ProductTensor {
    fn encoding(&self) -> &'static str {
        "pq"
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn storage_bits(&self) -> u64 {
        self.codes.storage_bits() + 32 * self.codebooks.len() as u64
    }

    fn to_dense(&self) -> ArrayD<f32> {
        self.decode().into_dyn()
    }

    fn matmul(&self, x: ArrayView2<f32>) -> deepcompress_core::Result<Array2<f32>> {
        if x.nrows() != self.shape[1] {
            return Err(deepcompress_core::CoreError::shape(
                "ProductTensor matmul input",
                format!("[{}, n]", self.shape[1]),
                x.shape(),
            ));
        }
        let (d, m) = (self.dim, self.spaces());
        let codes = self.codes.unpack();
        let mut y = Array2::<f32>::zeros((self.shape[0], x.ncols()));
        for j in 0..m {
            // Every centroid times this subspace's slice of the input: [k, n].
            let table = matmul(self.codebook(j), x.slice(s![j * d..(j + 1) * d, ..]));
            for (i, mut row) in y.rows_mut().into_iter().enumerate() {
                row += &table.row(codes[i * m + j] as usize);
            }
        }
        Ok(y)
    }

    fn clone_box(&self) -> Box<dyn Tensor> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_bits_is_ceil_log2() {
        let got: Vec<u8> = [2, 3, 4, 5, 16, 17, 255, 256].iter().map(|&k| code_bits(k)).collect();
        assert_eq!(got, vec![1, 2, 2, 3, 4, 5, 8, 8]);
        assert_eq!(code_bits(1), 1);
    }
}
