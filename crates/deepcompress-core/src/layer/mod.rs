//! Network operations: the [`Layer`] trait and the layers core provides.

mod activation;
mod batchnorm;
mod compressed_conv2d;
mod compressed_linear;
mod conv2d;
mod dropout;
mod flatten;
pub(crate) mod init;
mod linear;
mod pool;
mod residual;
mod sequential;
mod softmax;

pub use activation::{Relu, Sigmoid, Tanh};
pub use batchnorm::BatchNorm;
pub use compressed_conv2d::CompressedConv2d;
pub use compressed_linear::CompressedLinear;
pub use conv2d::{Conv2d, Conv2dConfig};
pub use dropout::Dropout;
pub use flatten::Flatten;
pub use init::Init;
pub use linear::Linear;
pub use pool::{AvgPool2d, GlobalAvgPool, MaxPool2d};
pub use residual::Residual;
pub use sequential::Sequential;
pub(crate) use softmax::softmax_log_inplace;
pub use softmax::{LogSoftmax, Softmax};

use crate::param::Param;
use crate::{CoreError, Result};
use ndarray::ArrayD;
use serde::Serialize;
use std::any::Any;
use std::fmt::Debug;

/// Whether a forward pass trains (caches for backward, batch statistics, dropout on)
/// or evaluates.
///
/// ```
/// use deepcompress_core::layer::{Dropout, Layer, Mode};
/// use ndarray::ArrayD;
/// let mut d = Dropout::new(0.5, 0).unwrap();
/// // Eval mode is deterministic: dropout is the identity.
/// assert_eq!(d.forward(ArrayD::ones(vec![4]), Mode::Eval).unwrap(), ArrayD::<f32>::ones(vec![4]));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training: caches what backward needs.
    Train,
    /// Inference: no caches, running statistics, dropout off.
    Eval,
}

/// What a layer costs for one input: the numbers a compression report compares.
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear};
/// let fc = Linear::new(784, 300, true, 0);
/// let c = fc.cost(&[1, 784]).unwrap();
/// assert_eq!(c.params, 784 * 300 + 300);
/// assert_eq!(c.macs, 784 * 300);
/// assert_eq!(c.storage_bits, c.params * 32);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LayerCost {
    /// Logical number of parameters (weights and biases).
    pub params: u64,
    /// Parameters that are not zero.
    pub nonzeros: u64,
    /// Exact bits needed to store the parameters in their current encoding.
    pub storage_bits: u64,
    /// Multiply-accumulates for one forward pass of the given input (whole batch).
    pub macs: u64,
}

impl std::ops::Add for LayerCost {
    type Output = LayerCost;
    fn add(self, o: LayerCost) -> LayerCost {
        LayerCost {
            params: self.params + o.params,
            nonzeros: self.nonzeros + o.nonzeros,
            storage_bits: self.storage_bits + o.storage_bits,
            macs: self.macs + o.macs,
        }
    }
}

impl LayerCost {
    /// The cost of a compressed weight tensor plus an f32 bias, for a product with
    /// `columns` input columns (batch × output positions).
    pub fn compressed(
        weight: &dyn crate::tensor::Tensor,
        bias: Option<&ndarray::Array1<f32>>,
        columns: u64,
    ) -> Self {
        let (b, b_nz) = bias
            .map_or((0, 0), |b| (b.len() as u64, b.iter().filter(|v| **v != 0.0).count() as u64));
        LayerCost {
            params: weight.numel() + b,
            nonzeros: weight.nonzeros() + b_nz,
            storage_bits: weight.storage_bits() + 32 * b,
            macs: columns * weight.macs_per_column(),
        }
    }

    /// The cost of dense f32 parameters with the given MACs.
    pub fn dense<'a>(params: impl IntoIterator<Item = &'a Param>, macs: u64) -> Self {
        let mut c = LayerCost { macs, ..Default::default() };
        for p in params {
            c.params += p.len() as u64;
            c.nonzeros += p.value().iter().filter(|v| **v != 0.0).count() as u64;
            c.storage_bits += 32 * p.len() as u64;
        }
        c
    }
}

/// One row of a model summary: a leaf layer at its path with its shapes and cost.
///
/// ```
/// let s = deepcompress_core::models::lenet5(0).summary(&[1, 1, 28, 28]).unwrap();
/// let conv1 = &s.rows[0];
/// assert_eq!((conv1.path.as_str(), conv1.kind.as_str()), ("conv1", "Conv2d"));
/// assert_eq!(conv1.output, vec![1, 20, 24, 24]);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerSummary {
    /// Dotted path in the model tree (`features.0`).
    pub path: String,
    /// Layer kind (`Linear`, `Conv2d`, ...).
    pub kind: String,
    /// Input shape, batch first.
    pub input: Vec<usize>,
    /// Output shape, batch first.
    pub output: Vec<usize>,
    /// Cost for that input.
    pub cost: LayerCost,
    /// Weight encoding (`f32`, `f16`, `csr`, ...).
    pub encoding: String,
}

/// A network operation.
///
/// Activations are `ArrayD<f32>` with the batch on the first axis (NCHW for images).
/// `forward` in [`Mode::Train`] caches what `backward` needs; `backward` accumulates
/// parameter gradients and returns the input gradient when asked for it.
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear, Mode};
/// use ndarray::ArrayD;
/// let mut fc = Linear::new(3, 2, true, 7);
/// let y = fc.forward(ArrayD::ones(vec![4, 3]), Mode::Train).unwrap();
/// assert_eq!(y.shape(), &[4, 2]);
/// let dx = fc.backward(ArrayD::ones(vec![4, 2]), true).unwrap().unwrap();
/// assert_eq!(dx.shape(), &[4, 3]);
/// assert_eq!(fc.params()[0].0, "weight");
/// ```
pub trait Layer: Debug + Send + Sync {
    /// Kind name, as in PyTorch (`Linear`, `Conv2d`, `BatchNorm2d`, ...).
    fn kind(&self) -> &'static str;

    /// Computes the output. Errors on a wrong input shape; the parameters are untouched.
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>>;

    /// Back-propagates `grad` (gradient of the loss with respect to the output),
    /// accumulating into the parameters' gradients. Returns the input gradient when
    /// `need_input_grad` is true (the first layer of a network skips that work).
    fn backward(&mut self, grad: ArrayD<f32>, need_input_grad: bool)
    -> Result<Option<ArrayD<f32>>>;

    /// Output shape for an input shape (batch first), or a shape error.
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>>;

    /// This layer's own cost (children excluded) for an input shape.
    fn cost(&self, input: &[usize]) -> Result<LayerCost> {
        self.output_shape(input)?;
        Ok(LayerCost::dense(self.params().into_iter().map(|(_, p)| p), 0))
    }

    /// Own trainable parameters by local name (`weight`, `bias`).
    fn params(&self) -> Vec<(&'static str, &Param)> {
        Vec::new()
    }

    /// Own trainable parameters, mutable.
    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        Vec::new()
    }

    /// Non-trainable state saved with the model (`running_mean`, `running_var`).
    fn buffers(&self) -> Vec<(&'static str, &ArrayD<f32>)> {
        Vec::new()
    }

    /// Non-trainable state, mutable.
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut ArrayD<f32>)> {
        Vec::new()
    }

    /// Child layers by local name (containers only).
    fn children(&self) -> Vec<(String, &dyn Layer)> {
        Vec::new()
    }

    /// Child slots by local name, so that a child can be replaced in place.
    fn children_mut(&mut self) -> Vec<(String, &mut Box<dyn Layer>)> {
        Vec::new()
    }

    /// Restarts the layer's random stream (dropout) from `seed`; a no-op for
    /// deterministic layers. Data-parallel training gives each replica its own stream.
    fn reseed(&mut self, _seed: u64) {}

    /// Weight encoding name for reports.
    fn encoding(&self) -> String {
        "f32".to_string()
    }

    /// Appends summary rows for this layer (containers recurse) and returns the output shape.
    fn summarize(
        &self,
        path: &str,
        input: &[usize],
        rows: &mut Vec<LayerSummary>,
    ) -> Result<Vec<usize>> {
        let output = self.output_shape(input)?;
        rows.push(LayerSummary {
            path: path.to_string(),
            kind: self.kind().to_string(),
            input: input.to_vec(),
            output: output.clone(),
            cost: self.cost(input)?,
            encoding: self.encoding(),
        });
        Ok(output)
    }

    /// Clones behind a box.
    fn clone_box(&self) -> Box<dyn Layer>;

    /// For downcasting to the concrete layer.
    fn as_any(&self) -> &dyn Any;

    /// For downcasting to the concrete layer, mutable.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl Clone for Box<dyn Layer> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// Checks the trailing dimensions of `shape` (batch excluded) against `expected`;
/// `None` entries match anything.
pub(crate) fn expect_shape(layer: &str, shape: &[usize], expected: &[Option<usize>]) -> Result<()> {
    let ok = shape.len() == expected.len() + 1
        && shape[1..].iter().zip(expected).all(|(s, e)| e.is_none_or(|e| e == *s));
    if ok {
        Ok(())
    } else {
        let pattern: Vec<String> = std::iter::once("batch".to_string())
            .chain(expected.iter().map(|e| e.map_or("_".to_string(), |v| v.to_string())))
            .collect();
        Err(CoreError::shape(layer, format!("[{}]", pattern.join(", ")), shape))
    }
}

/// The `weight` and optional `bias` parameters of Linear-like layers, by PyTorch name.
pub(crate) fn weight_and_bias<'a>(
    w: &'a Param,
    b: &'a Option<Param>,
) -> Vec<(&'static str, &'a Param)> {
    std::iter::once(("weight", w)).chain(b.as_ref().map(|b| ("bias", b))).collect()
}

/// Mutable [`weight_and_bias`].
pub(crate) fn weight_and_bias_mut<'a>(
    w: &'a mut Param,
    b: &'a mut Option<Param>,
) -> Vec<(&'static str, &'a mut Param)> {
    std::iter::once(("weight", w)).chain(b.as_mut().map(|b| ("bias", b))).collect()
}

/// Error for `backward` without a training-mode forward.
pub(crate) fn no_cache(layer: &str) -> CoreError {
    CoreError::NoForwardCache { layer: layer.to_string() }
}

/// Boilerplate shared by every layer: `clone_box`, `as_any`, `as_any_mut`.
macro_rules! layer_boilerplate {
    () => {
        fn clone_box(&self) -> Box<dyn $crate::layer::Layer> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    };
}
pub(crate) use layer_boilerplate;
