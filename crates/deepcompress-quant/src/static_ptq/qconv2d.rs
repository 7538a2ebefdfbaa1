//! [`QConv2d`]: an int8 convolution for inference.

use super::product::Int8Product;
use crate::calibrate::ActQuant;
use crate::error::{QuantError, Result};
use deepcompress_core::CoreError;
use deepcompress_core::layer::{Conv2dConfig, Layer, LayerCost, Mode};
use ndarray::{Array1, Array2, ArrayD, ArrayView4};

/// A 2-D convolution computed in integers, as [`QLinear`](super::QLinear) is: the im2col
/// patches are quantized with the calibrated input parameters (padding is the real value
/// 0, which the affine code represents exactly), multiplied by per-output-channel int8
/// kernels with i32 accumulation, and requantized to int8 outputs. Grouped convolutions
/// are refused.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Mode};
/// use deepcompress_quant::{ActQuant, QConv2d};
/// use ndarray::ArrayD;
///
/// let conv = Conv2d::new(Conv2dConfig::new(1, 4, 3).padding(1), 0)?;
/// let q = QConv2d::new(conv.config, conv.weight.value().view().into_dimensionality()?, None,
///                      ActQuant::from_range(0.0, 1.0, 8)?, ActQuant::from_range(-2.0, 2.0, 8)?)?;
/// let x = ArrayD::from_elem(vec![2, 1, 5, 5], 0.5_f32);
/// let y = q.clone().forward(x.clone(), Mode::Eval)?;
/// assert_eq!(y.shape(), &[2, 4, 5, 5]);
/// let sim = q.simulate(&x)?;
/// assert!((&y - &sim).iter().all(|d| d.abs() <= q.output_quant().scale * 1.0001));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct QConv2d {
    config: Conv2dConfig,
    product: Int8Product,
    bias: Option<Array1<f32>>,
}

impl QConv2d {
    /// Quantizes `weight` (`[out, in, kh, kw]`) per output channel to int8 and fixes the
    /// input and output quantization (8-bit).
    pub fn new(
        config: Conv2dConfig,
        weight: ArrayView4<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
    ) -> Result<Self> {
        Self::build(config, weight, bias, input, output, false)
    }

    /// [`QConv2d::new`] with 7-bit weight codes, as [`QLinear::new_reduced_range`](
    /// super::QLinear::new_reduced_range).
    pub fn new_reduced_range(
        config: Conv2dConfig,
        weight: ArrayView4<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
    ) -> Result<Self> {
        Self::build(config, weight, bias, input, output, true)
    }

    fn build(
        config: Conv2dConfig,
        weight: ArrayView4<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
        reduced: bool,
    ) -> Result<Self> {
        let config = Conv2dConfig { bias: bias.is_some(), ..config };
        config.check()?;
        if config.groups != 1 {
            return Err(QuantError::param("QConv2d groups", config.groups, "must be 1"));
        }
        let want = [config.out_channels, config.in_channels, config.kernel.0, config.kernel.1];
        if weight.shape() != want {
            return Err(
                CoreError::shape("QConv2d weight", format!("{want:?}"), weight.shape()).into()
            );
        }
        if let Some(b) = bias
            && b.len() != config.out_channels
        {
            return Err(QuantError::param(
                "bias length",
                b.len(),
                format!("must equal the {} output channels", config.out_channels),
            ));
        }
        let flat = weight
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((want[0], want[1] * want[2] * want[3]))
            .expect("contiguous");
        let product = Int8Product::new(flat.view(), bias, input, output, reduced)?;
        Ok(Self { config, product, bias: bias.map(|b| Array1::from(b.to_vec())) })
    }

    /// The configuration.
    pub fn config(&self) -> &Conv2dConfig {
        &self.config
    }

    /// Input quantization parameters.
    pub fn input_quant(&self) -> ActQuant {
        self.product.input
    }

    /// Output quantization parameters.
    pub fn output_quant(&self) -> ActQuant {
        self.product.output
    }

    /// The float simulation (fake quantization) of [`Layer::forward`].
    pub fn simulate(&self, x: &ArrayD<f32>) -> Result<ArrayD<f32>> {
        let bias = self.bias.as_ref().and_then(|b| b.as_slice());
        self.run(x, |cols| Ok(self.product.simulate(cols.t(), bias)))
    }

    /// Convolution through `rows`, which maps patches `[positions, k]` to `[positions, out]`.
    fn run(
        &self,
        x: &ArrayD<f32>,
        rows: impl Fn(ndarray::ArrayView2<f32>) -> Result<Array2<f32>> + Sync,
    ) -> Result<ArrayD<f32>> {
        deepcompress_core::ensure_finite(x.iter(), "QConv2d", "input")?;
        let y = self.config.convolve_with("QConv2d", x, |cols| {
            let y = rows(cols).map_err(|e| e.into_core("QConv2d"))?;
            Ok(y.reversed_axes().as_standard_layout().into_owned())
        })?;
        Ok(y.into_dyn())
    }
}

impl Layer for QConv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn forward(&mut self, x: ArrayD<f32>, _mode: Mode) -> deepcompress_core::Result<ArrayD<f32>> {
        let product = &self.product;
        self.run(&x, |cols| {
            let patches = cols.t().as_standard_layout().into_owned();
            product.forward(patches.view())
        })
        .map_err(|e| e.into_core("QConv2d"))
    }

    fn backward(
        &mut self,
        _grad: ArrayD<f32>,
        _need_input_grad: bool,
    ) -> deepcompress_core::Result<Option<ArrayD<f32>>> {
        Err(super::inference_only("QConv2d"))
    }

    fn output_shape(&self, input: &[usize]) -> deepcompress_core::Result<Vec<usize>> {
        let (oh, ow) = self.config.out_hw("QConv2d", input)?;
        Ok(vec![input[0], self.config.out_channels, oh, ow])
    }

    fn cost(&self, input: &[usize]) -> deepcompress_core::Result<LayerCost> {
        let (oh, ow) = self.config.out_hw("QConv2d", input)?;
        Ok(super::cost(&self.product, self.bias.as_ref(), (input[0] * oh * ow) as u64))
    }

    fn encoding(&self) -> String {
        self.product.encoding()
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}
