//! [`SparseTensor`]: a pruned weight in CSR form with Deep Compression's storage size.

use super::kernel::{CsrView, spmm};
use super::relative_index::{check_index_bits, decode_gaps, encode_gaps};
use crate::bits::PackedInts;
use crate::{PruneError, Result};
use deepcompress_core::tensor::Tensor;
use deepcompress_core::{CoreError, Result as CoreResult};
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use std::any::Any;

/// How the non-zero values are stored.
///
/// ```
/// use deepcompress_prune::sparse::SparseValues;
/// let v = SparseValues::F32;
/// assert_eq!(v.bits_per_value(), 32);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum SparseValues {
    /// Each value as an f32.
    F32,
    /// Each value as a b-bit index into a codebook (weight sharing).
    Shared {
        /// The shared values.
        codebook: Vec<f32>,
        /// One index per non-zero, in row-major order.
        indices: PackedInts,
    },
}

impl SparseValues {
    /// Bits stored per non-zero value.
    pub fn bits_per_value(&self) -> u32 {
        match self {
            SparseValues::F32 => 32,
            SparseValues::Shared { indices, .. } => indices.bits(),
        }
    }
}

/// A pruned weight in compressed sparse row form, multiplied by a parallel CSR kernel.
///
/// The matrix view is `[out, in]` (a conv kernel `[out, c, kh, kw]` is `[out, c·kh·kw]`).
/// In memory it keeps row pointers, u32 column indices and f32 values for the kernel;
/// its [`storage_bits`](Tensor::storage_bits) is the size of Deep Compression's encoding
/// (Han, Mao and Dally 2015, arXiv 1510.00149): one `index_bits` relative index per
/// non-zero and per filler (see [`encode_gaps`]) plus one value per non-zero (32 bits, or
/// the codebook index width when the values are shared, plus the codebook).
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_prune::sparse::SparseTensor;
/// use ndarray::array;
/// let w = array![[0.0f32, 2.0, 0.0], [1.0, 0.0, 0.0]].into_dyn();
/// let s = SparseTensor::from_dense(&w, 4).unwrap();
/// assert_eq!(s.nonzeros(), 2);
/// assert_eq!(s.storage_bits(), 2 * (4 + 32));
/// assert_eq!(s.to_dense(), w);
/// let y = s.matmul(array![[1.0f32], [1.0], [1.0]].view()).unwrap();
/// assert_eq!(y, array![[2.0], [1.0]]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SparseTensor {
    shape: Vec<usize>,
    cols: usize,
    row_ptr: Vec<u32>,
    col_idx: Vec<u32>,
    values: Vec<f32>,
    index_bits: u32,
    /// Relative-index symbols, fillers included.
    gap_symbols: u64,
    stored: SparseValues,
    /// Exact size when loaded from an entropy-coded file (Huffman tables included).
    coded_bits: Option<u64>,
}

impl SparseTensor {
    /// The non-zeros of `dense` with `index_bits`-bit relative indices.
    pub fn from_dense(dense: &ArrayD<f32>, index_bits: u32) -> Result<Self> {
        check_index_bits(index_bits)?;
        if dense.ndim() < 2 {
            return Err(CoreError::shape("SparseTensor", "[out, in, ...]", dense.shape()).into());
        }
        let dense = dense.as_standard_layout();
        let flat = dense.as_slice().expect("standard layout");
        crate::error::check_finite(flat, "SparseTensor")?;
        let positions: Vec<usize> =
            flat.iter().enumerate().filter(|(_, v)| **v != 0.0).map(|(i, _)| i).collect();
        let values = positions.iter().map(|&p| flat[p]).collect();
        Self::assemble(dense.shape().to_vec(), index_bits, &positions, values, SparseValues::F32)
    }

    /// Rebuilds a tensor from its stored form: relative-index symbols and the values of
    /// the non-zeros (f32 or shared). Used by the container reader; every field is checked.
    ///
    /// ```
    /// use deepcompress_prune::sparse::{SparseTensor, SparseValues};
    /// use ndarray::array;
    /// let w = array![[0.0f32, 2.0], [0.0, 1.0]].into_dyn();
    /// let s = SparseTensor::from_dense(&w, 4).unwrap();
    /// let t = SparseTensor::from_stored(
    ///     vec![2, 2], 4, &s.gap_symbols(), s.values().to_vec(), SparseValues::F32,
    /// ).unwrap();
    /// assert_eq!(s, t);
    /// ```
    pub fn from_stored(
        shape: Vec<usize>,
        index_bits: u32,
        gap_symbols: &[u32],
        values: Vec<f32>,
        stored: SparseValues,
    ) -> Result<Self> {
        if shape.len() < 2 {
            return Err(CoreError::shape("SparseTensor", "[out, in, ...]", &shape).into());
        }
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| {
            PruneError::corrupt("sparse tensor", format!("shape {shape:?} overflows"))
        })?;
        let positions = decode_gaps(gap_symbols, index_bits, numel)?;
        if positions.len() != values.len() {
            return Err(PruneError::corrupt(
                "sparse tensor",
                format!("{} positions but {} values", positions.len(), values.len()),
            ));
        }
        crate::error::check_finite(&values, "SparseTensor")?;
        Self::assemble(shape, index_bits, &positions, values, stored)
    }

    fn assemble(
        shape: Vec<usize>,
        index_bits: u32,
        positions: &[usize],
        values: Vec<f32>,
        stored: SparseValues,
    ) -> Result<Self> {
        let rows = shape[0];
        let cols: usize = shape[1..].iter().product();
        if positions.len() > u32::MAX as usize || cols > u32::MAX as usize {
            return Err(PruneError::param("non-zeros", positions.len(), "more than 2^32"));
        }
        if let SparseValues::Shared { codebook, indices } = &stored {
            if indices.len() != values.len() {
                return Err(PruneError::corrupt(
                    "sparse tensor",
                    format!("{} codebook indices for {} values", indices.len(), values.len()),
                ));
            }
            if let Some(i) = (0..indices.len()).find(|&i| indices.get(i) as usize >= codebook.len())
            {
                return Err(PruneError::corrupt(
                    "sparse tensor",
                    format!(
                        "index {} at {i} is past the {}-entry codebook",
                        indices.get(i),
                        codebook.len()
                    ),
                ));
            }
        }
        let mut row_ptr = vec![0u32; rows + 1];
        let mut col_idx = Vec::with_capacity(positions.len());
        for &p in positions {
            row_ptr[p / cols + 1] += 1;
            col_idx.push((p % cols) as u32);
        }
        for r in 0..rows {
            row_ptr[r + 1] += row_ptr[r];
        }
        let gap_symbols = encode_gaps(positions, index_bits)?.len() as u64;
        Ok(Self {
            shape,
            cols,
            row_ptr,
            col_idx,
            values,
            index_bits,
            gap_symbols,
            stored,
            coded_bits: None,
        })
    }

    /// Replaces the f32 values by `bits`-bit indices into `codebook`: every non-zero must
    /// be exactly one of the codebook entries (as after weight sharing).
    ///
    /// ```
    /// use deepcompress_core::tensor::Tensor;
    /// use deepcompress_prune::sparse::SparseTensor;
    /// use ndarray::array;
    /// let w = array![[0.5f32, 0.0], [-0.5, 0.5]].into_dyn();
    /// let s = SparseTensor::from_dense(&w, 4).unwrap().with_codebook(vec![-0.5, 0.5], 1).unwrap();
    /// assert_eq!(s.storage_bits(), 3 * (4 + 1) + 2 * 32);
    /// assert_eq!(s.to_dense(), w);
    /// ```
    pub fn with_codebook(mut self, codebook: Vec<f32>, bits: u32) -> Result<Self> {
        crate::error::check_finite(&codebook, "SparseTensor codebook")?;
        if codebook.len() > 1usize << bits.min(31) {
            return Err(PruneError::param(
                "bits",
                bits,
                format!("too few for a {}-entry codebook", codebook.len()),
            ));
        }
        let mut idx = Vec::with_capacity(self.values.len());
        for (i, v) in self.values.iter().enumerate() {
            let k = codebook.iter().position(|c| c == v).ok_or_else(|| {
                PruneError::param("codebook", v, format!("non-zero {i} is not a codebook entry"))
            })?;
            idx.push(k as u32);
        }
        let indices = PackedInts::pack(&idx, bits)?;
        self.stored = SparseValues::Shared { codebook, indices };
        Ok(self)
    }

    /// Records that this tensor is stored entropy-coded in `bits` (positions, values,
    /// codebook and Huffman tables), as read from a container: [`Tensor::storage_bits`]
    /// then reports that size instead of the fixed-width one.
    pub fn with_coded_bits(mut self, bits: u64) -> Self {
        self.coded_bits = Some(bits);
        self
    }

    /// Fixed-width storage size: `index_bits` per relative index, the value width per
    /// non-zero, and the codebook.
    pub fn fixed_width_bits(&self) -> u64 {
        self.index_storage_bits() + self.value_storage_bits()
    }

    /// Row pointers (`rows + 1` entries).
    pub fn row_ptr(&self) -> &[u32] {
        &self.row_ptr
    }

    /// Column index of each non-zero (in the `[out, in]` view).
    pub fn col_idx(&self) -> &[u32] {
        &self.col_idx
    }

    /// The non-zero values, row-major.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// How the values are stored.
    pub fn stored_values(&self) -> &SparseValues {
        &self.stored
    }

    /// Width of a relative index.
    pub fn index_bits(&self) -> u32 {
        self.index_bits
    }

    /// Flat row-major positions of the non-zeros.
    pub fn positions(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.values.len());
        for r in 0..self.shape[0] {
            for k in self.row_ptr[r]..self.row_ptr[r + 1] {
                out.push(r * self.cols + self.col_idx[k as usize] as usize);
            }
        }
        out
    }

    /// The relative-index symbols (fillers included) Deep Compression stores.
    pub fn gap_symbols(&self) -> Vec<u32> {
        encode_gaps(&self.positions(), self.index_bits).expect("positions are increasing")
    }

    /// Number of relative-index symbols, fillers included.
    pub fn gap_count(&self) -> u64 {
        self.gap_symbols
    }

    /// Bits spent on relative indices.
    pub fn index_storage_bits(&self) -> u64 {
        self.gap_symbols * self.index_bits as u64
    }

    /// Bits spent on values (and the codebook, when shared).
    pub fn value_storage_bits(&self) -> u64 {
        let per = self.stored.bits_per_value() as u64 * self.values.len() as u64;
        match &self.stored {
            SparseValues::F32 => per,
            SparseValues::Shared { codebook, .. } => per + 32 * codebook.len() as u64,
        }
    }

    fn view(&self) -> CsrView<'_> {
        CsrView {
            rows: self.shape[0],
            row_ptr: &self.row_ptr,
            col_idx: &self.col_idx,
            values: &self.values,
        }
    }
}

impl Tensor for SparseTensor {
    fn encoding(&self) -> &'static str {
        match self.stored {
            SparseValues::F32 => "csr",
            SparseValues::Shared { .. } => "csr+shared",
        }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn storage_bits(&self) -> u64 {
        self.coded_bits.unwrap_or_else(|| self.fixed_width_bits())
    }

    fn to_dense(&self) -> ArrayD<f32> {
        let mut out = vec![0.0f32; self.shape[0] * self.cols];
        for (p, v) in self.positions().into_iter().zip(&self.values) {
            out[p] = *v;
        }
        ArrayD::from_shape_vec(IxDyn(&self.shape), out).expect("shape matches")
    }

    fn matmul(&self, x: ArrayView2<f32>) -> CoreResult<Array2<f32>> {
        if x.nrows() != self.cols {
            return Err(CoreError::shape(
                "SparseTensor matmul",
                format!("[{}, n]", self.cols),
                x.shape(),
            ));
        }
        Ok(spmm(self.view(), x))
    }

    fn nonzeros(&self) -> u64 {
        self.values.len() as u64
    }

    fn macs_per_column(&self) -> u64 {
        self.values.len() as u64
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
    use deepcompress_core::ops::matmul;
    use proptest::prelude::*;

    fn random_sparse(rows: usize, cols: usize, keep: f64, seed: u64) -> ArrayD<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (state >> 40) as f64 / (1u64 << 24) as f64;
            if u < keep { (u * 10.0 - 0.3) as f32 } else { 0.0 }
        })
    }

    proptest! {
        #[test]
        fn kernel_matches_dense(rows in 1usize..40, cols in 1usize..70, n in 1usize..80,
                                keep in 0.0f64..1.0, seed in any::<u64>(), bits in 1u32..8) {
            let w = random_sparse(rows, cols, keep, seed);
            let s = SparseTensor::from_dense(&w, bits).unwrap();
            let x = random_sparse(cols, n, 1.0, seed ^ 7).into_dimensionality().unwrap();
            let w2 = w.clone().into_dimensionality().unwrap();
            let want = matmul(w2.view(), x.view());
            let got = s.matmul(x.view()).unwrap();
            for (a, b) in got.iter().zip(want.iter()) {
                prop_assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
            // a transposed (column-major) input gives the same result
            let xt = x.t().to_owned();
            let got_t = s.matmul(xt.t()).unwrap();
            prop_assert_eq!(got_t, got);
            prop_assert_eq!(s.to_dense(), w);
        }

        #[test]
        fn stored_form_round_trips(rows in 1usize..20, cols in 1usize..50, keep in 0.0f64..0.5,
                                   seed in any::<u64>(), bits in 1u32..6) {
            let w = random_sparse(rows, cols, keep, seed);
            let s = SparseTensor::from_dense(&w, bits).unwrap();
            let t = SparseTensor::from_stored(vec![rows, cols], bits, &s.gap_symbols(),
                                              s.values().to_vec(), SparseValues::F32).unwrap();
            prop_assert_eq!(&t, &s);
            prop_assert_eq!(s.gap_count() as usize, s.gap_symbols().len());
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        let w = ndarray::array![[1.0f32, f32::NAN]].into_dyn();
        assert!(SparseTensor::from_dense(&w, 4).is_err());
        let w = ndarray::array![1.0f32].into_dyn();
        assert!(SparseTensor::from_dense(&w, 4).is_err());
        let w = ndarray::array![[1.0f32, 0.0]].into_dyn();
        assert!(SparseTensor::from_dense(&w, 17).is_err());
        let s = SparseTensor::from_dense(&w, 4).unwrap();
        assert!(s.matmul(ndarray::Array2::zeros((3, 1)).view()).is_err());
        assert!(s.clone().with_codebook(vec![2.0], 1).is_err());
        assert!(SparseTensor::from_stored(vec![1, 2], 4, &[0], vec![], SparseValues::F32).is_err());
    }
}
