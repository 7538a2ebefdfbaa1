//! Fully connected layer.

use super::{
    Init, Layer, LayerCost, Mode, expect_shape, init, layer_boilerplate, no_cache, weight_and_bias,
    weight_and_bias_mut,
};
use crate::param::Param;
use crate::{CoreError, Result, ops};
use ndarray::{Array2, ArrayD, Axis, Ix1, Ix2};

/// `y = x Wᵀ + b` with `W: [out, in]` (PyTorch layout and names `weight`, `bias`).
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear, Mode};
/// use ndarray::array;
/// let mut fc = Linear::from_weights(array![[1.0f32, 2.0]], Some(array![0.5f32])).unwrap();
/// let y = fc.forward(array![[1.0f32, 1.0]].into_dyn(), Mode::Eval).unwrap();
/// assert_eq!(y, array![[3.5f32]].into_dyn());
/// ```
#[derive(Debug, Clone)]
pub struct Linear {
    /// Weight `[out, in]`.
    pub weight: Param,
    /// Optional bias `[out]`.
    pub bias: Option<Param>,
    input: Option<Array2<f32>>,
}

impl Linear {
    /// A layer with PyTorch's default initialisation from `seed`.
    pub fn new(in_features: usize, out_features: usize, bias: bool, seed: u64) -> Self {
        Self::with_init(in_features, out_features, bias, Init::FanIn, seed)
    }

    /// A layer initialised by `init` from `seed`.
    pub fn with_init(
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        seed: u64,
    ) -> Self {
        let mut rng = init::rng(seed);
        let bound = init.bound(in_features, out_features);
        let w = init::uniform(&[out_features, in_features], bound, &mut rng);
        let b = bias.then(|| Param::new(init::uniform(&[out_features], bound, &mut rng)));
        Self { weight: Param::new(w), bias: b, input: None }
    }

    /// A layer from given weights `[out, in]` and bias `[out]`.
    pub fn from_weights(weight: Array2<f32>, bias: Option<ndarray::Array1<f32>>) -> Result<Self> {
        if let Some(b) = &bias
            && b.len() != weight.nrows()
        {
            return Err(CoreError::shape(
                "Linear bias",
                format!("[{}]", weight.nrows()),
                b.shape(),
            ));
        }
        Ok(Self {
            weight: Param::new(weight.into_dyn()),
            bias: bias.map(|b| Param::new(b.into_dyn())),
            input: None,
        })
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.weight.value().shape()[1]
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.weight.value().shape()[0]
    }
}

impl Layer for Linear {
    fn kind(&self) -> &'static str {
        "Linear"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        expect_shape("Linear", x.shape(), &[Some(self.in_features())])?;
        let x = x.into_dimensionality::<Ix2>().expect("checked 2-D");
        let w = self.weight.effective();
        let w = w.view().into_dimensionality::<Ix2>().expect("weight is 2-D");
        let mut y = ops::matmul_nt(x.view(), w);
        if let Some(b) = &self.bias {
            let b = b.value().view().into_dimensionality::<Ix1>().expect("bias is 1-D");
            y += &b;
        }
        self.input = (mode == Mode::Train).then_some(x);
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let x = self.input.as_ref().ok_or_else(|| no_cache("Linear"))?;
        if grad.shape() != [x.nrows(), self.out_features()] {
            return Err(CoreError::shape(
                "Linear backward",
                format!("[{}, {}]", x.nrows(), self.out_features()),
                grad.shape(),
            ));
        }
        let g = grad.into_dimensionality::<Ix2>().expect("checked 2-D");
        let mut gw = self.weight.grad_mut().view_mut().into_dimensionality::<Ix2>().expect("2-D");
        ops::gemm(1.0, g.t(), x.view(), true, gw.view_mut());
        if let Some(b) = &mut self.bias {
            *b.grad_mut() += &g.sum_axis(Axis(0)).into_dyn();
        }
        if !need_input_grad {
            return Ok(None);
        }
        let w = self.weight.effective();
        let w = w.view().into_dimensionality::<Ix2>().expect("weight is 2-D");
        Ok(Some(ops::matmul(g.view(), w).into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        expect_shape("Linear", input, &[Some(self.in_features())])?;
        Ok(vec![input[0], self.out_features()])
    }

    fn cost(&self, input: &[usize]) -> Result<LayerCost> {
        self.output_shape(input)?;
        let macs = (input[0] * self.in_features() * self.out_features()) as u64;
        Ok(LayerCost::dense(self.params().into_iter().map(|(_, p)| p), macs))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        weight_and_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }

    layer_boilerplate!();
}
