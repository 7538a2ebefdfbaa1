//! Element-wise activations. Each caches its output, from which its derivative follows.

use super::{Layer, Mode, layer_boilerplate, no_cache};
use crate::{CoreError, Result};
use ndarray::{ArrayD, Zip};

/// Defines an element-wise activation from `f(x)` and `f'` expressed through `y = f(x)`.
macro_rules! activation {
    ($(#[$doc:meta])* $name:ident, $kind:literal, |$x:ident| $f:expr, |$y:ident| $df:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name {
            output: Option<ArrayD<f32>>,
        }

        impl Layer for $name {
            fn kind(&self) -> &'static str {
                $kind
            }

            fn forward(&mut self, mut x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
                if crate::ops::worth_parallel(x.len()) {
                    x.par_mapv_inplace(|$x| $f);
                } else {
                    x.mapv_inplace(|$x| $f);
                }
                self.output = (mode == Mode::Train).then(|| x.clone());
                Ok(x)
            }

            fn backward(&mut self, mut grad: ArrayD<f32>, need_input_grad: bool) -> Result<Option<ArrayD<f32>>> {
                let out = self.output.as_ref().ok_or_else(|| no_cache($kind))?;
                if grad.shape() != out.shape() {
                    return Err(CoreError::shape(concat!($kind, " backward"), format!("{:?}", out.shape()), grad.shape()));
                }
                if !need_input_grad {
                    return Ok(None);
                }
                let z = Zip::from(&mut grad).and(out);
                if crate::ops::worth_parallel(out.len()) {
                    z.par_for_each(|g, &$y| *g *= $df);
                } else {
                    z.for_each(|g, &$y| *g *= $df);
                }
                Ok(Some(grad))
            }

            fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
                Ok(input.to_vec())
            }

            layer_boilerplate!();
        }
    };
}

activation!(
    /// Rectified linear unit, `max(x, 0)`.
    ///
    /// ```
    /// use deepcompress_core::layer::{Layer, Mode, Relu};
    /// use ndarray::array;
    /// let y = Relu::default().forward(array![-1.0f32, 2.0].into_dyn(), Mode::Eval).unwrap();
    /// assert_eq!(y, array![0.0f32, 2.0].into_dyn());
    /// ```
    Relu, "ReLU", |x| x.max(0.0), |y| if y > 0.0 { 1.0 } else { 0.0 }
);

activation!(
    /// Hyperbolic tangent.
    ///
    /// ```
    /// use deepcompress_core::layer::{Layer, Mode, Tanh};
    /// use ndarray::array;
    /// let y = Tanh::default().forward(array![0.0f32].into_dyn(), Mode::Eval).unwrap();
    /// assert_eq!(y[[0]], 0.0);
    /// ```
    Tanh, "Tanh", |x| x.tanh(), |y| 1.0 - y * y
);

activation!(
    /// Logistic sigmoid, `1 / (1 + e^-x)`.
    ///
    /// ```
    /// use deepcompress_core::layer::{Layer, Mode, Sigmoid};
    /// use ndarray::array;
    /// let y = Sigmoid::default().forward(array![0.0f32].into_dyn(), Mode::Eval).unwrap();
    /// assert_eq!(y[[0]], 0.5);
    /// ```
    Sigmoid, "Sigmoid", |x| 1.0 / (1.0 + (-x).exp()), |y| y * (1.0 - y)
);
