//! [`ProductTensor`]: a Linear weight stored as product-quantization codes and codebooks.

use super::config::ProductConfig;
use super::kmeans::kmeans;
use crate::error::{QuantError, Result};
use crate::pack::Packed;
use crate::streamed::streamed_matmul;
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
/// [`Tensor::matmul`] takes one of two routes. For up to 16 input columns on a layer with
/// at least `4k` rows it uses the codebooks directly: per subspace it multiplies the `k`
/// centroids by the matching `d` rows of the input once (a lookup table), then each output
/// row adds the entry of its code — `k·d + out` multiply-adds per subspace and column
/// instead of `out·d`. Otherwise it decodes blocks of rows into a cache-sized buffer and
/// multiplies them with the dense GEMM, so the full weight never exists in memory.
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

    /// Rows `r0..r1` of the weight, row-major into `out`.
    fn decode_rows(&self, r0: usize, r1: usize, out: &mut [f32]) {
        // Sub-vectors of a constant length copy without a call to `memcpy` each.
        match self.dim {
            1 => self.decode_rows_of::<1>(r0, r1, out),
            2 => self.decode_rows_of::<2>(r0, r1, out),
            4 => self.decode_rows_of::<4>(r0, r1, out),
            8 => self.decode_rows_of::<8>(r0, r1, out),
            _ => self.decode_rows_of::<0>(r0, r1, out),
        }
    }

    /// [`ProductTensor::decode_rows`] for `D == dim`, or any `dim` when `D` is 0.
    fn decode_rows_of<const D: usize>(&self, r0: usize, r1: usize, out: &mut [f32]) {
        let (d, m) = (if D == 0 { self.dim } else { D }, self.spaces());
        let mut codes = vec![0usize; m];
        for (i, row) in (r0..r1).zip(out.chunks_mut(self.shape[1])) {
            self.codes.decode_with(i * m, &mut codes, |c| c as usize);
            for (j, (&c, sub)) in codes.iter().zip(row.chunks_exact_mut(d)).enumerate() {
                let from = &self.codebooks[(j * self.centroids + c) * d..][..d];
                sub.iter_mut().zip(from).for_each(|(o, &v)| *o = v);
            }
        }
    }

    /// `W x` through per-subspace lookup tables (`x` has at least one column): each table
    /// holds every centroid times the subspace's `d` input rows, and each output row adds
    /// the entry of its code from every table.
    fn table_matmul(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let (rows, n) = (self.shape[0], x.ncols());
        let x = x.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let (d, m, k) = (self.dim, self.spaces(), self.centroids);
        let mut y = vec![0.0_f32; rows * n];
        // Subspaces go in groups whose tables fit in TABLE_BYTES, so that the rows'
        // lookups hit cache.
        let group = (TABLE_BYTES / (4 * k * n)).clamp(1, m);
        let mut tables = vec![0.0_f32; group * k * n];
        for j0 in (0..m).step_by(group) {
            let g = group.min(m - j0);
            tables[..g * k * n].par_chunks_mut(k * n).enumerate().for_each(|(jj, table)| {
                let j = j0 + jj;
                let book = &self.codebooks[j * k * d..(j + 1) * k * d];
                let xj = &xs[j * d * n..(j + 1) * d * n];
                for (centroid, out) in book.chunks(d).zip(table.chunks_mut(n)) {
                    for (t, o) in out.iter_mut().enumerate() {
                        *o = centroid.iter().enumerate().map(|(e, &w)| w * xj[e * n + t]).sum();
                    }
                }
            });
            let tables = &tables;
            y.par_chunks_mut(ROW_BLOCK * n).enumerate().for_each(|(b, block)| {
                let mut codes = vec![0usize; g];
                for (r, yr) in block.chunks_mut(n).enumerate() {
                    let at = (b * ROW_BLOCK + r) * m + j0;
                    self.codes.decode_with(at, &mut codes, |c| c as usize);
                    add_entries(tables, k, &codes, yr);
                }
            });
        }
        Array2::from_shape_vec((rows, n), y).expect("rows x n values")
    }
}

/// Adds to `y` (one row of outputs, up to `TABLE_COLUMNS` columns) the table entries of
/// its `codes`, one per subspace of the group. The column count is a constant, so that
/// the running sums stay in registers: a row in memory would carry a store-to-load chain
/// from code to code.
fn add_entries(tables: &[f32], k: usize, codes: &[usize], y: &mut [f32]) {
    match y.len() {
        1 => add_entries_of::<1>(tables, k, codes, y),
        2 => add_entries_of::<2>(tables, k, codes, y),
        3 => add_entries_of::<3>(tables, k, codes, y),
        4 => add_entries_of::<4>(tables, k, codes, y),
        5 => add_entries_of::<5>(tables, k, codes, y),
        6 => add_entries_of::<6>(tables, k, codes, y),
        7 => add_entries_of::<7>(tables, k, codes, y),
        8 => add_entries_of::<8>(tables, k, codes, y),
        9 => add_entries_of::<9>(tables, k, codes, y),
        10 => add_entries_of::<10>(tables, k, codes, y),
        11 => add_entries_of::<11>(tables, k, codes, y),
        12 => add_entries_of::<12>(tables, k, codes, y),
        13 => add_entries_of::<13>(tables, k, codes, y),
        14 => add_entries_of::<14>(tables, k, codes, y),
        15 => add_entries_of::<15>(tables, k, codes, y),
        _ => add_entries_of::<16>(tables, k, codes, y),
    }
}

/// [`add_entries`] for `N` columns; four running sums hide the add latency.
fn add_entries_of<const N: usize>(tables: &[f32], k: usize, codes: &[usize], y: &mut [f32]) {
    let mut acc = [[0.0_f32; N]; 4];
    for (q, cs) in codes.chunks(4).enumerate() {
        for (p, (a, &c)) in acc.iter_mut().zip(cs).enumerate() {
            let entry = &tables[((4 * q + p) * k + c) * N..][..N];
            a.iter_mut().zip(entry).for_each(|(s, &v)| *s += v);
        }
    }
    for (t, o) in y.iter_mut().enumerate() {
        *o += acc[0][t] + acc[1][t] + acc[2][t] + acc[3][t];
    }
}

/// Bytes of lookup tables built at a time (about half an L2 cache).
const TABLE_BYTES: usize = 1 << 18;
/// Output rows per parallel task of the table product.
const ROW_BLOCK: usize = 64;
/// Up to this many input columns, lookup tables can beat decoding rows.
const TABLE_COLUMNS: usize = 16;

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
        let mut w = vec![0.0_f32; self.shape[0] * self.shape[1]];
        self.decode_rows(0, self.shape[0], &mut w);
        ArrayD::from_shape_vec(self.shape.to_vec(), w).expect("rows x cols values")
    }

    fn matmul(&self, x: ArrayView2<f32>) -> deepcompress_core::Result<Array2<f32>> {
        if x.nrows() != self.shape[1] {
            return Err(deepcompress_core::CoreError::shape(
                "ProductTensor matmul input",
                format!("[{}, n]", self.shape[1]),
                x.shape(),
            ));
        }
        let (rows, cols) = (self.shape[0], self.shape[1]);
        // Lookup tables cost `k·d` multiply-adds per subspace and column, against `out·d`
        // for decoded rows: they pay for few columns and many more rows than centroids.
        if x.ncols() == 0 {
            return Ok(Array2::zeros((rows, 0)));
        }
        if x.ncols() <= TABLE_COLUMNS && 4 * self.centroids <= rows {
            Ok(self.table_matmul(x))
        } else {
            Ok(streamed_matmul(rows, cols, x, |r0, r1, out| self.decode_rows(r0, r1, out)))
        }
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
    fn every_product_path_equals_the_decoded_weight_times_x() {
        // Lookup tables (1 to 16 columns; subspaces in several groups), decoded rows (more
        // columns, or too few rows for tables), sub-vectors of 1, 3 and 4.
        // 1,100 subspaces of 64 centroids take 2 table groups at one column, 18 at 16.
        let cases = [
            (256, 64, 4, 16),
            (300, 96, 3, 8),
            (40, 32, 1, 16),
            (512, 1024, 4, 128),
            (256, 1100, 1, 64),
        ];
        for (rows, cols, d, k) in cases {
            let w = Array2::from_shape_fn((rows, cols), |(i, j)| {
                (((i * 37 + j * 11) % 29) as f32 - 14.0) / 9.0
            });
            let pq = ProductTensor::quantize(w.view(), &ProductConfig::new(d, k).iterations(3), 1)
                .unwrap();
            let dense = pq.to_dense().into_dimensionality::<ndarray::Ix2>().unwrap();
            for n in [1, 2, 3, 16, 40] {
                let x =
                    Array2::from_shape_fn((cols, n), |(i, t)| ((i * 7 + t * 3) % 11) as f32 - 5.0);
                let want = dense.dot(&x);
                let got = pq.matmul(x.view()).unwrap();
                let scale = want.iter().fold(1.0_f32, |a, v| a.max(v.abs()));
                let worst = (&got - &want).iter().fold(0.0_f32, |a, v| a.max(v.abs()));
                assert!(
                    worst <= 1e-5 * scale * cols as f32,
                    "{rows}x{cols} d {d} k {k} n {n}: {worst}"
                );
            }
            assert_eq!(pq.matmul(Array2::zeros((cols, 0)).view()).unwrap().dim(), (rows, 0));
        }
    }

    #[test]
    fn code_bits_is_ceil_log2() {
        let got: Vec<u8> = [2, 3, 4, 5, 16, 17, 255, 256].iter().map(|&k| code_bits(k)).collect();
        assert_eq!(got, vec![1, 2, 2, 3, 4, 5, 8, 8]);
        assert_eq!(code_bits(1), 1);
    }
}
