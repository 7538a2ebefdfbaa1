//! Plain f32 storage.

use super::{Tensor, check_matmul, matrix_dims};
use crate::{Result, ops};
use ndarray::{Array2, ArrayD, ArrayView2, Ix2};
use std::any::Any;

/// An uncompressed f32 weight: 32 bits per value.
///
/// ```
/// use deepcompress_core::tensor::{DenseTensor, Tensor};
/// let t = DenseTensor::new(ndarray::ArrayD::zeros(vec![3, 2, 2, 2]));
/// assert_eq!(t.storage_bits(), 24 * 32);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct DenseTensor {
    values: ArrayD<f32>,
}

impl DenseTensor {
    /// Wraps dense values.
    pub fn new(values: ArrayD<f32>) -> Self {
        Self { values }
    }

    /// The values.
    pub fn values(&self) -> &ArrayD<f32> {
        &self.values
    }
}

impl Tensor for DenseTensor {
    fn encoding(&self) -> &'static str {
        "f32"
    }
    fn shape(&self) -> &[usize] {
        self.values.shape()
    }
    fn storage_bits(&self) -> u64 {
        self.values.len() as u64 * 32
    }
    fn to_dense(&self) -> ArrayD<f32> {
        self.values.clone()
    }
    fn matmul(&self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        check_matmul(self.encoding(), self.shape(), &x)?;
        let dims = matrix_dims(self.shape());
        let w = self.values.view().into_shape_with_order(dims).map_err(|_| {
            crate::CoreError::shape("f32 tensor matmul", "a contiguous weight", self.shape())
        })?;
        Ok(ops::matmul(w.into_dimensionality::<Ix2>().expect("2-D by construction"), x))
    }
    fn clone_box(&self) -> Box<dyn Tensor> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
