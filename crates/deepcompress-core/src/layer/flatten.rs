//! Flatten all but the batch axis.

use super::{Layer, Mode, layer_boilerplate, no_cache};
use crate::{CoreError, Result};
use ndarray::ArrayD;

/// `[n, d1, d2, ...] -> [n, d1*d2*...]`, as `nn.Flatten()`.
///
/// ```
/// use deepcompress_core::layer::{Flatten, Layer, Mode};
/// use ndarray::ArrayD;
/// let y = Flatten::default().forward(ArrayD::zeros(vec![2, 50, 4, 4]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[2, 800]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Flatten {
    in_shape: Option<Vec<usize>>,
}

impl Layer for Flatten {
    fn kind(&self) -> &'static str {
        "Flatten"
    }
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let out = self.output_shape(x.shape())?;
        self.in_shape = (mode == Mode::Train).then(|| x.shape().to_vec());
        let x = if x.is_standard_layout() { x } else { x.as_standard_layout().into_owned() };
        Ok(x.into_shape_with_order(out).expect("standard layout reshapes"))
    }
    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let s = self.in_shape.clone().ok_or_else(|| no_cache("Flatten"))?;
        if grad.len() != s.iter().product::<usize>() {
            return Err(CoreError::shape(
                "Flatten backward",
                format!("{} values", s.iter().product::<usize>()),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let g =
            if grad.is_standard_layout() { grad } else { grad.as_standard_layout().into_owned() };
        Ok(Some(g.into_shape_with_order(s).expect("same length")))
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        if input.is_empty() {
            return Err(CoreError::shape("Flatten", "[batch, ...]", input));
        }
        Ok(vec![input[0], input[1..].iter().product()])
    }
    layer_boilerplate!();
}
