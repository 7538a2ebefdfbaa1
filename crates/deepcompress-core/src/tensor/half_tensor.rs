//! IEEE half-precision storage: the simplest real compression (2x), used to prove the
//! pipeline's size accounting end to end.

use super::{Tensor, check_matmul, matrix_dims};
use crate::{Result, ops};
use half::f16;
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use std::any::Any;

/// A weight stored as f16 values (16 bits each), decoded to f32 to multiply.
///
/// ```
/// use deepcompress_core::tensor::{HalfTensor, Tensor};
/// use ndarray::array;
/// let t = HalfTensor::from_f32(&array![[0.5f32, -2.0]].into_dyn());
/// assert_eq!(t.storage_bits(), 2 * 16);
/// assert_eq!(t.to_dense(), array![[0.5f32, -2.0]].into_dyn());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct HalfTensor {
    shape: Vec<usize>,
    values: Vec<f16>,
}

impl HalfTensor {
    /// Rounds each value to the nearest f16 (values beyond ±65504 become ±inf).
    pub fn from_f32(values: &ArrayD<f32>) -> Self {
        Self {
            shape: values.shape().to_vec(),
            values: values.iter().map(|&v| f16::from_f32(v)).collect(),
        }
    }

    /// The stored half-precision values in row-major order.
    pub fn raw(&self) -> &[f16] {
        &self.values
    }
}

impl Tensor for HalfTensor {
    fn encoding(&self) -> &'static str {
        "f16"
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn storage_bits(&self) -> u64 {
        self.values.len() as u64 * 16
    }
    fn to_dense(&self) -> ArrayD<f32> {
        let v = self.values.iter().map(|h| h.to_f32()).collect();
        ArrayD::from_shape_vec(IxDyn(&self.shape), v).expect("shape matches length")
    }
    fn matmul(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        check_matmul(self.encoding(), &self.shape, &x)?;
        let v = self.values.iter().map(|h| h.to_f32()).collect();
        let w = Array2::from_shape_vec(matrix_dims(&self.shape), v).expect("shape matches length");
        Ok(ops::matmul(w.view(), x))
    }
    fn clone_box(&self) -> Box<dyn Tensor> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
