//! Weights in a storage encoding: the [`Tensor`] trait and the encodings core provides.
//!
//! Every compression family adds its own encodings (sparse, shared, quantized, factored)
//! in its crate; they all report their exact storage size and multiply with their own kernel.

mod dense;
mod half_tensor;

pub use dense::DenseTensor;
pub use half_tensor::HalfTensor;

use crate::Result;
use ndarray::{Array2, ArrayD, ArrayView2};
use std::any::Any;
use std::fmt::Debug;

/// A weight in some storage encoding.
///
/// A 2-D weight is `[out, in]` (PyTorch layout); a convolution kernel `[out, in, kh, kw]`
/// multiplies as `[out, in*kh*kw]`.
///
/// ```
/// use deepcompress_core::tensor::{DenseTensor, Tensor};
/// use ndarray::array;
/// let w = DenseTensor::new(array![[1.0f32, 2.0], [0.0, 3.0]].into_dyn());
/// assert_eq!(w.shape(), &[2, 2]);
/// assert_eq!(w.storage_bits(), 4 * 32);
/// assert_eq!(w.nonzeros(), 3);
/// let y = w.matmul(array![[1.0f32], [1.0]].view()).unwrap();
/// assert_eq!(y, array![[3.0], [3.0]]);
/// ```
pub trait Tensor: Debug + Send + Sync {
    /// Short name of the encoding, for reports (`"f32"`, `"f16"`, `"csr"`, ...).
    fn encoding(&self) -> &'static str;
    /// Logical shape of the decoded weight.
    fn shape(&self) -> &[usize];
    /// Exact number of bits needed to store this tensor self-contained: values, indices,
    /// codebooks, scales — everything needed to decode it.
    fn storage_bits(&self) -> u64;
    /// Decoded dense values.
    fn to_dense(&self) -> ArrayD<f32>;
    /// `y = W x` with `W` viewed as `[out, in]` and `x` as `[in, n]`.
    fn matmul(&self, x: ArrayView2<f32>) -> Result<Array2<f32>>;
    /// Number of stored non-zero weights (defaults to counting the decoded values).
    fn nonzeros(&self) -> u64 {
        self.to_dense().iter().filter(|v| **v != 0.0).count() as u64
    }
    /// Multiply-accumulates of [`Tensor::matmul`] per column of `x` (a sparse kernel only
    /// multiplies stored non-zeros; defaults to the number of logical weights).
    fn macs_per_column(&self) -> u64 {
        self.numel()
    }
    /// Number of logical weights.
    fn numel(&self) -> u64 {
        self.shape().iter().product::<usize>() as u64
    }
    /// Clones behind a box (trait objects cannot derive `Clone`).
    fn clone_box(&self) -> Box<dyn Tensor>;
    /// For downcasting to the concrete encoding (serialisers need it).
    fn as_any(&self) -> &dyn Any;
}

impl Clone for Box<dyn Tensor> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// `[out, in]` view of a shape: the first axis against the product of the others.
pub(crate) fn matrix_dims(shape: &[usize]) -> (usize, usize) {
    let out = shape.first().copied().unwrap_or(1);
    let inner = shape.iter().skip(1).product::<usize>();
    (out, inner)
}

/// Checks `x` against a weight of `shape` for [`Tensor::matmul`].
pub(crate) fn check_matmul(encoding: &str, shape: &[usize], x: &ArrayView2<f32>) -> Result<()> {
    let (_, inner) = matrix_dims(shape);
    if x.nrows() != inner {
        return Err(crate::CoreError::shape(
            format!("{encoding} tensor {shape:?} matmul"),
            format!("[{inner}, n]"),
            x.shape(),
        ));
    }
    Ok(())
}
