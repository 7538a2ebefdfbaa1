//! An inference Conv2d whose weight is any [`Tensor`] encoding.

use super::conv2d::conv_by_chunks;
use super::{Conv2d, Conv2dConfig, Layer, LayerCost, Mode, layer_boilerplate, no_cache};
use crate::tensor::Tensor;
use crate::{CoreError, Result};
use ndarray::{Array1, Array4, ArrayD, Ix4};

/// A 2-D convolution whose kernel `[out, in, kh, kw]` is stored in a compressed
/// [`Tensor`] encoding and applied through that encoding's own matrix product on the
/// im2col columns (a sparse or f16 convolution). Grouped convolutions are refused: a
/// tensor multiplies as one `[out, in·kh·kw]` matrix.
///
/// The weight is frozen: backward passes gradients to the input only (through the
/// decoded kernel), so that earlier layers can still be fine-tuned.
///
/// ```
/// use deepcompress_core::layer::{CompressedConv2d, Conv2d, Conv2dConfig, Layer, Mode};
/// use deepcompress_core::tensor::HalfTensor;
/// use ndarray::ArrayD;
/// let conv = Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), 0).unwrap();
/// let w = HalfTensor::from_f32(conv.weight.value());
/// let mut half = CompressedConv2d::new(conv.config, Box::new(w), None).unwrap();
/// let y = half.forward(ArrayD::ones(vec![2, 1, 5, 5]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[2, 4, 5, 5]);
/// assert_eq!(half.cost(&[1, 1, 5, 5]).unwrap().storage_bits, 4 * 9 * 16);
/// ```
#[derive(Debug, Clone)]
pub struct CompressedConv2d {
    config: Conv2dConfig,
    weight: Box<dyn Tensor>,
    bias: Option<Array1<f32>>,
    input: Option<ArrayD<f32>>,
}

impl CompressedConv2d {
    /// Wraps a kernel tensor `[out, in, kh, kw]` and an optional bias `[out]`; the
    /// configuration's `bias` flag follows the bias given.
    pub fn new(
        config: Conv2dConfig,
        weight: Box<dyn Tensor>,
        bias: Option<Array1<f32>>,
    ) -> Result<Self> {
        let config = Conv2dConfig { bias: bias.is_some(), ..config };
        config.check()?;
        if config.groups != 1 {
            return Err(CoreError::param(
                "CompressedConv2d groups",
                config.groups,
                "grouped convolution over a compressed tensor is not supported",
            ));
        }
        let want = [config.out_channels, config.in_channels, config.kernel.0, config.kernel.1];
        if weight.shape() != want {
            return Err(CoreError::shape(
                "CompressedConv2d weight",
                format!("{want:?}"),
                weight.shape(),
            ));
        }
        if let Some(b) = &bias
            && b.len() != config.out_channels
        {
            return Err(CoreError::shape(
                "CompressedConv2d bias",
                format!("[{}]", config.out_channels),
                b.shape(),
            ));
        }
        Ok(Self { config, weight, bias, input: None })
    }

    /// The configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// The kernel tensor.
    pub fn weight(&self) -> &dyn Tensor {
        self.weight.as_ref()
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Array1<f32>> {
        self.bias.as_ref()
    }
}

impl Layer for CompressedConv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let (oh, ow) = self.config.out_hw("CompressedConv2d", x.shape())?;
        let x4 = x.view().into_dimensionality::<Ix4>().expect("checked 4-D");
        let geo = self.config.geometry(x4.shape()[2], x4.shape()[3]);
        let weight = &self.weight;
        let (mut y, _) = conv_by_chunks(x4, &geo, self.config.out_channels, (oh, ow), |cols| {
            weight.matmul(cols)
        })?;
        if let Some(b) = &self.bias {
            y += &b.view().into_shape_with_order((b.len(), 1, 1)).expect("1-D bias");
        }
        self.input = (mode == Mode::Train).then_some(x);
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let x = self.input.as_ref().ok_or_else(|| no_cache("CompressedConv2d"))?;
        if !need_input_grad {
            return Ok(None);
        }
        // The input gradient of a frozen kernel is that of the dense convolution.
        let dense = self.weight.to_dense().into_dimensionality::<Ix4>().expect("4-D kernel");
        let mut conv = Conv2d::from_weights(self.config, Array4::from(dense), self.bias.clone())?;
        conv.forward(x.clone(), Mode::Train)?;
        conv.backward(grad, true)
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let (oh, ow) = self.config.out_hw("CompressedConv2d", input)?;
        Ok(vec![input[0], self.config.out_channels, oh, ow])
    }

    fn cost(&self, input: &[usize]) -> Result<LayerCost> {
        let (oh, ow) = self.config.out_hw("CompressedConv2d", input)?;
        Ok(LayerCost::compressed(
            self.weight.as_ref(),
            self.bias.as_ref(),
            (input[0] * oh * ow) as u64,
        ))
    }

    fn encoding(&self) -> String {
        self.weight.encoding().to_string()
    }

    layer_boilerplate!();
}
