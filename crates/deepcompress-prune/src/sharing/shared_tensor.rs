//! The frozen weight-sharing encoding: b-bit indices into an f32 codebook.

use crate::bits::PackedInts;
use crate::{PruneError, Result};
use deepcompress_core::tensor::Tensor;
use deepcompress_core::{CoreError, ops};
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn, s};
use std::any::Any;

/// Largest index width: a codebook of at most 65,536 entries.
const MAX_BITS: u32 = 16;

/// Rows decoded per block by [`SharedTensor::matmul`]: bounds the scratch memory to a
/// slice of the weight while keeping each GEMM large enough to be efficient.
const ROW_BLOCK: usize = 64;

/// A weight stored as one `bits`-bit index per value into a codebook of f32 centroids
/// (Han, Mao and Dally, "Deep Compression", 2015, arXiv 1510.00149, sec. 3): the
/// encoding `"shared"`. Storage is `numel * bits + 32 * codebook.len()` bits.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_prune::sharing::SharedTensor;
/// use ndarray::array;
/// let t = SharedTensor::from_parts(&[2, 3], vec![-0.5, 0.0, 2.0], &[0, 1, 2, 2, 2, 0], 2).unwrap();
/// assert_eq!(t.encoding(), "shared");
/// assert_eq!(t.storage_bits(), 6 * 2 + 3 * 32);
/// assert_eq!(t.to_dense(), array![[-0.5f32, 0.0, 2.0], [2.0, 2.0, -0.5]].into_dyn());
/// let y = t.matmul(array![[1.0f32], [1.0], [1.0]].view()).unwrap();
/// assert_eq!(y, array![[1.5f32], [3.5]]);
/// assert!(SharedTensor::from_parts(&[1], vec![1.0], &[1], 1).is_err()); // index 1 of 1 entry
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SharedTensor {
    shape: Vec<usize>,
    codebook: Vec<f32>,
    indices: PackedInts,
    /// Exact size when loaded from an entropy-coded file (Huffman table included).
    coded_bits: Option<u64>,
}

impl SharedTensor {
    /// Builds the tensor from its shape, codebook (1 to `2^bits` finite values) and one
    /// index per element in row-major order, stored in `bits` bits (1 to 16). Every part
    /// is checked; a mismatch is an error naming the part and the value.
    pub fn from_parts(
        shape: &[usize],
        codebook: Vec<f32>,
        indices: &[u32],
        bits: u32,
    ) -> Result<Self> {
        if !(1..=MAX_BITS).contains(&bits) {
            return Err(PruneError::param("bits", bits, "shared indices take 1 to 16 bits"));
        }
        if codebook.is_empty() || codebook.len() > 1 << bits {
            return Err(PruneError::param(
                "codebook length",
                codebook.len(),
                format!("{bits}-bit indices address 1 to {} entries", 1u32 << bits),
            ));
        }
        if let Some((i, v)) = codebook.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PruneError::param(format!("codebook[{i}]"), v, "must be finite"));
        }
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| PruneError::param("shape", format!("{shape:?}"), "too many elements"))?;
        if shape.is_empty() || indices.len() != numel {
            return Err(PruneError::param(
                "indices length",
                indices.len(),
                format!("shape {shape:?} needs {numel} indices (and at least one axis)"),
            ));
        }
        if let Some((i, v)) =
            indices.iter().enumerate().find(|(_, v)| **v as usize >= codebook.len())
        {
            return Err(PruneError::param(
                format!("indices[{i}]"),
                v,
                format!("the codebook has {} entries", codebook.len()),
            ));
        }
        let indices = PackedInts::pack(indices, bits)?;
        Ok(Self { shape: shape.to_vec(), codebook, indices, coded_bits: None })
    }

    /// Records that this tensor is stored entropy-coded in `bits` (indices, codebook and
    /// Huffman table), as read from a container: [`Tensor::storage_bits`] then reports
    /// that size instead of the fixed-width one.
    pub fn with_coded_bits(mut self, bits: u64) -> Self {
        self.coded_bits = Some(bits);
        self
    }

    /// The centroids.
    pub fn codebook(&self) -> &[f32] {
        &self.codebook
    }

    /// The packed per-element indices (row-major).
    pub fn indices(&self) -> &PackedInts {
        &self.indices
    }

    /// Bits per index.
    pub fn bits(&self) -> u32 {
        self.indices.bits()
    }

    /// `[out, in]` view of the shape.
    fn dims(&self) -> (usize, usize) {
        (self.shape[0], self.shape[1..].iter().product())
    }

    /// Decodes rows `r0..r1` into `dst` (row-major, `(r1 - r0) * in` values).
    fn decode_rows(&self, r0: usize, r1: usize, dst: &mut [f32]) {
        let (_, inner) = self.dims();
        for (t, d) in (r0 * inner..r1 * inner).zip(dst.iter_mut()) {
            *d = self.codebook[self.indices.get(t) as usize];
        }
    }
}

impl Tensor for SharedTensor {
    fn encoding(&self) -> &'static str {
        "shared"
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn storage_bits(&self) -> u64 {
        self.coded_bits.unwrap_or(self.indices.storage_bits() + 32 * self.codebook.len() as u64)
    }

    fn to_dense(&self) -> ArrayD<f32> {
        let v = (0..self.indices.len()).map(|t| self.codebook[self.indices.get(t) as usize]);
        ArrayD::from_shape_vec(IxDyn(&self.shape), v.collect()).expect("length checked")
    }

    /// Decodes blocks of `ROW_BLOCK` rows and multiplies each with the dense GEMM, so the
    /// dense weight never exists whole.
    fn matmul(&self, x: ArrayView2<f32>) -> deepcompress_core::Result<Array2<f32>> {
        let (out, inner) = self.dims();
        if x.nrows() != inner {
            return Err(CoreError::shape(
                format!("shared tensor {:?} matmul", self.shape),
                format!("[{inner}, n]"),
                x.shape(),
            ));
        }
        let mut y = Array2::zeros((out, x.ncols()));
        let mut block = vec![0.0f32; ROW_BLOCK.min(out) * inner];
        for r0 in (0..out).step_by(ROW_BLOCK) {
            let r1 = (r0 + ROW_BLOCK).min(out);
            let w = &mut block[..(r1 - r0) * inner];
            self.decode_rows(r0, r1, w);
            let w = ArrayView2::from_shape((r1 - r0, inner), w).expect("block length");
            ops::gemm(1.0, w, x, false, y.slice_mut(s![r0..r1, ..]));
        }
        Ok(y)
    }

    fn nonzeros(&self) -> u64 {
        let zero: Vec<bool> = self.codebook.iter().map(|c| *c == 0.0).collect();
        (0..self.indices.len()).filter(|&t| !zero[self.indices.get(t) as usize]).count() as u64
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
    use deepcompress_core::tensor::DenseTensor;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matmul_matches_dense(out in 1usize..150, inner in 1usize..9, cols in 1usize..4, bits in 1u32..6, seed in 0u32..1000) {
            let k = 1usize << bits;
            let codebook: Vec<f32> = (0..k).map(|c| c as f32 * 0.25 - 1.0).collect();
            let idx: Vec<u32> = (0..out * inner).map(|t| ((t as u32).wrapping_mul(2654435761) ^ seed) % k as u32).collect();
            let t = SharedTensor::from_parts(&[out, inner], codebook, &idx, bits).unwrap();
            let x = Array2::from_shape_fn((inner, cols), |(i, j)| (i + 2 * j) as f32 * 0.5 - 1.0);
            let dense = DenseTensor::new(t.to_dense());
            let want = dense.matmul(x.view()).unwrap();
            let got = t.matmul(x.view()).unwrap();
            prop_assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-4));
            prop_assert_eq!(t.nonzeros(), dense.nonzeros());
        }
    }

    #[test]
    fn invalid_parts_are_errors() {
        assert!(SharedTensor::from_parts(&[2], vec![0.0, 1.0], &[0, 1], 0).is_err());
        assert!(SharedTensor::from_parts(&[2], vec![0.0, 1.0], &[0, 1], 17).is_err());
        assert!(SharedTensor::from_parts(&[2], vec![0.0; 3], &[0, 1], 1).is_err());
        assert!(SharedTensor::from_parts(&[2], vec![], &[0, 1], 1).is_err());
        assert!(SharedTensor::from_parts(&[2], vec![f32::NAN], &[0, 0], 1).is_err());
        assert!(SharedTensor::from_parts(&[3], vec![0.0], &[0, 0], 1).is_err());
        assert!(SharedTensor::from_parts(&[], vec![0.0], &[0], 1).is_err());
        assert!(SharedTensor::from_parts(&[usize::MAX, 2], vec![0.0], &[0], 1).is_err());
        let empty = SharedTensor::from_parts(&[0, 5], vec![0.0], &[], 1).unwrap();
        assert_eq!(empty.matmul(Array2::zeros((5, 2)).view()).unwrap().shape(), &[0, 2]);
        let t = SharedTensor::from_parts(&[1, 2], vec![3.0], &[0, 0], 1).unwrap();
        assert!(t.matmul(Array2::zeros((3, 1)).view()).is_err());
    }
}
