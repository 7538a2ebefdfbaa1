//! [`QLinear`]: an int8 Linear for inference.

use super::product::Int8Product;
use crate::calibrate::ActQuant;
use crate::error::{QuantError, Result};
use deepcompress_core::CoreError;
use deepcompress_core::layer::{Layer, LayerCost, Mode};
use ndarray::{Array1, ArrayD, ArrayView2, Ix2};

/// A Linear layer computed in integers: the input is quantized with calibrated
/// parameters (affine int8), multiplied by per-channel symmetric int8 weights with exact
/// i32 accumulation, the i32 bias added, and the result requantized by a fixed-point
/// multiplier to int8 output codes, which are returned decoded as `f32` so that ordinary
/// layers (ReLU, pooling) can follow.
///
/// [`QLinear::simulate`] is the float simulation of the same arithmetic (fake
/// quantization); the two agree within one output step.
///
/// ```
/// use deepcompress_core::layer::{Layer, Mode};
/// use deepcompress_quant::{ActQuant, QLinear};
/// use ndarray::{array, Array2};
///
/// let w = array![[0.5_f32, -1.0], [2.0, 0.25]];
/// let fc = QLinear::new(w.view(), Some(&[0.1, -0.1]), ActQuant::from_range(-1.0, 1.0, 8)?,
///                       ActQuant::from_range(-3.0, 3.0, 8)?)?;
/// let x = array![[0.5_f32, -0.5]].into_dyn();
/// let y = fc.clone().forward(x.clone(), Mode::Eval)?;
/// assert!((y[[0, 0]] - 0.85).abs() < 0.03 && (y[[0, 1]] - 0.775).abs() < 0.03);
/// let sim = fc.simulate(&x)?;
/// assert!((&y - &sim).iter().all(|d| d.abs() <= fc.output_quant().scale * 1.0001));
/// // 4 int8 weights, 2 scales and 2 i32 biases, input and output parameters.
/// assert_eq!(fc.cost(&[1, 2])?.storage_bits, 4 * 8 + 2 * 32 + 2 * 32 + 2 * 40);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct QLinear {
    product: Int8Product,
    bias: Option<Array1<f32>>,
}

impl QLinear {
    /// Quantizes `weight` (`[out, in]`) per output channel to int8 and fixes the input
    /// and output quantization (8-bit). NaN or infinite weights or biases are refused.
    pub fn new(
        weight: ArrayView2<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
    ) -> Result<Self> {
        Self::build(weight, bias, input, output, false)
    }

    /// [`QLinear::new`] with 7-bit weight codes (`-63..=63`, onnxruntime's "reduce
    /// range"): twice the weight rounding error, and on AVX2 CPUs without VNNI a faster
    /// product (`Int8Matrix::from_f32_reduced_range`). Stored in bytes as before.
    pub fn new_reduced_range(
        weight: ArrayView2<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
    ) -> Result<Self> {
        Self::build(weight, bias, input, output, true)
    }

    fn build(
        weight: ArrayView2<f32>,
        bias: Option<&[f32]>,
        input: ActQuant,
        output: ActQuant,
        reduced: bool,
    ) -> Result<Self> {
        if let Some(b) = bias
            && b.len() != weight.nrows()
        {
            return Err(QuantError::param(
                "bias length",
                b.len(),
                format!("must equal the {} output features", weight.nrows()),
            ));
        }
        let product = Int8Product::new(weight, bias, input, output, reduced)?;
        Ok(Self { product, bias: bias.map(|b| Array1::from(b.to_vec())) })
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
        let x2 = self.check(x)?;
        Ok(self.product.simulate(x2, self.bias.as_ref().and_then(|b| b.as_slice())).into_dyn())
    }

    fn check<'a>(&self, x: &'a ArrayD<f32>) -> deepcompress_core::Result<ArrayView2<'a, f32>> {
        let (_, k) = self.product.weight.dim();
        if x.ndim() != 2 || x.shape()[1] != k {
            return Err(CoreError::shape("QLinear input", format!("[batch, {k}]"), x.shape()));
        }
        deepcompress_core::ensure_finite(x.iter(), "QLinear", "input")?;
        Ok(x.view().into_dimensionality::<Ix2>().expect("checked 2-D"))
    }
}

impl Layer for QLinear {
    fn kind(&self) -> &'static str {
        "Linear"
    }

    fn forward(&mut self, x: ArrayD<f32>, _mode: Mode) -> deepcompress_core::Result<ArrayD<f32>> {
        let x2 = self.check(&x)?;
        let y = self.product.forward(x2).map_err(|e| e.into_core("QLinear"))?;
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        _grad: ArrayD<f32>,
        _need_input_grad: bool,
    ) -> deepcompress_core::Result<Option<ArrayD<f32>>> {
        Err(super::inference_only("QLinear"))
    }

    fn output_shape(&self, input: &[usize]) -> deepcompress_core::Result<Vec<usize>> {
        let (out, k) = self.product.weight.dim();
        if input.len() != 2 || input[1] != k {
            return Err(CoreError::shape("QLinear input", format!("[batch, {k}]"), input));
        }
        Ok(vec![input[0], out])
    }

    fn cost(&self, input: &[usize]) -> deepcompress_core::Result<LayerCost> {
        self.output_shape(input)?;
        Ok(super::cost(&self.product, self.bias.as_ref(), input[0] as u64))
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
