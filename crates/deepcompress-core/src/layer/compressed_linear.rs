//! An inference Linear whose weight is any [`Tensor`] encoding.

use super::{Layer, LayerCost, Mode, expect_shape, layer_boilerplate, no_cache};
use crate::tensor::Tensor;
use crate::{CoreError, Result};
use ndarray::{Array1, Array2, ArrayD, Ix2};

/// `y = x Wᵀ + b` where `W` is stored in a compressed [`Tensor`] encoding and multiplied
/// by that encoding's own kernel (a sparse Linear is a `CompressedLinear` over a CSR
/// tensor, an f16 Linear one over a [`HalfTensor`](crate::tensor::HalfTensor)).
///
/// The weight is frozen: backward passes gradients to the input (through the decoded
/// weight) so that layers before it can still be fine-tuned.
///
/// ```
/// use deepcompress_core::layer::{CompressedLinear, Layer, Mode};
/// use deepcompress_core::tensor::HalfTensor;
/// use ndarray::array;
/// let w = HalfTensor::from_f32(&array![[1.0f32, 2.0]].into_dyn());
/// let mut fc = CompressedLinear::new(Box::new(w), None).unwrap();
/// let y = fc.forward(array![[1.0f32, 1.0]].into_dyn(), Mode::Eval).unwrap();
/// assert_eq!(y, array![[3.0f32]].into_dyn());
/// assert_eq!(fc.cost(&[1, 2]).unwrap().storage_bits, 32);
/// ```
#[derive(Debug, Clone)]
pub struct CompressedLinear {
    weight: Box<dyn Tensor>,
    bias: Option<Array1<f32>>,
    batch: Option<usize>,
}

impl CompressedLinear {
    /// Wraps a `[out, in]` weight tensor and an optional bias `[out]`.
    pub fn new(weight: Box<dyn Tensor>, bias: Option<Array1<f32>>) -> Result<Self> {
        if weight.shape().len() != 2 {
            return Err(CoreError::shape("CompressedLinear weight", "[out, in]", weight.shape()));
        }
        if let Some(b) = &bias
            && b.len() != weight.shape()[0]
        {
            return Err(CoreError::shape(
                "CompressedLinear bias",
                format!("[{}]", weight.shape()[0]),
                b.shape(),
            ));
        }
        Ok(Self { weight, bias, batch: None })
    }

    /// The weight tensor.
    pub fn weight(&self) -> &dyn Tensor {
        self.weight.as_ref()
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Array1<f32>> {
        self.bias.as_ref()
    }
}

impl Layer for CompressedLinear {
    fn kind(&self) -> &'static str {
        "Linear"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        expect_shape("CompressedLinear", x.shape(), &[Some(self.weight.shape()[1])])?;
        let x = x.into_dimensionality::<Ix2>().expect("checked 2-D");
        let yt = self.weight.matmul(x.t())?;
        let mut y: Array2<f32> = yt.reversed_axes().as_standard_layout().into_owned();
        if let Some(b) = &self.bias {
            y += b;
        }
        self.batch = (mode == Mode::Train).then_some(x.nrows());
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let n = self.batch.ok_or_else(|| no_cache("CompressedLinear"))?;
        let out = self.weight.shape()[0];
        if grad.shape() != [n, out] {
            return Err(CoreError::shape(
                "CompressedLinear backward",
                format!("[{n}, {out}]"),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let g = grad.into_dimensionality::<Ix2>().expect("checked 2-D");
        let w = self.weight.to_dense().into_dimensionality::<Ix2>().expect("2-D weight");
        Ok(Some(crate::ops::matmul(g.view(), w.view()).into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        expect_shape("CompressedLinear", input, &[Some(self.weight.shape()[1])])?;
        Ok(vec![input[0], self.weight.shape()[0]])
    }

    fn cost(&self, input: &[usize]) -> Result<LayerCost> {
        self.output_shape(input)?;
        Ok(LayerCost::compressed(self.weight.as_ref(), self.bias.as_ref(), input[0] as u64))
    }

    fn encoding(&self) -> String {
        self.weight.encoding().to_string()
    }

    layer_boilerplate!();
}
