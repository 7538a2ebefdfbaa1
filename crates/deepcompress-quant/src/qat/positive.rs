//! [`PositiveScalar`]: keeps learned quantizer ranges (LSQ steps, PACT clipping levels)
//! positive, with an optional L2 penalty.

use deepcompress_core::Constraint;
use ndarray::ArrayD;
use std::any::Any;

/// The constraint on a learned step size or clipping level: after every optimizer step
/// each value is raised to at least `min`, and an optional L2 penalty `λ·v` is added to
/// the gradient (PACT's regulariser on α, Choi et al. 2018, arXiv 1805.06085; it pulls
/// the clipping level down so that the quantization grid stays fine).
///
/// The penalty is applied once per optimizer step through
/// [`Constraint::adjust_grad`], on the value remembered at the last projection, so it
/// does not depend on how the batch is split across data-parallel replicas.
///
/// ```
/// use deepcompress_core::Param;
/// use deepcompress_quant::PositiveScalar;
/// use ndarray::array;
/// let mut alpha = Param::new(array![-1.0f32, 2.0].into_dyn());
/// alpha.set_constraint(Box::new(PositiveScalar::new(1e-3, 0.5)));
/// assert_eq!(alpha.value(), &array![1e-3f32, 2.0].into_dyn());
/// alpha.adjust_grad(); // zero gradient plus 0.5 * value
/// assert_eq!(alpha.grad(), &array![0.5e-3f32, 1.0].into_dyn());
/// ```
#[derive(Debug, Clone)]
pub struct PositiveScalar {
    min: f32,
    l2: f32,
    last: Vec<f32>,
}

impl PositiveScalar {
    /// Values stay `>= min`; `l2` (`>= 0`) weights the penalty `l2/2 · v²`. Non-finite
    /// or negative arguments are replaced by `f32::MIN_POSITIVE` and 0.
    pub fn new(min: f32, l2: f32) -> Self {
        let min = if min.is_finite() && min > 0.0 { min } else { f32::MIN_POSITIVE };
        let l2 = if l2.is_finite() && l2 > 0.0 { l2 } else { 0.0 };
        Self { min, l2, last: Vec::new() }
    }

    /// The lower bound.
    pub fn min(&self) -> f32 {
        self.min
    }

    /// The L2 weight.
    pub fn l2(&self) -> f32 {
        self.l2
    }
}

impl Constraint for PositiveScalar {
    fn name(&self) -> &'static str {
        "positive"
    }

    fn adjust_grad(&self, grad: &mut ArrayD<f32>) {
        if self.l2 > 0.0 && self.last.len() == grad.len() {
            for (g, v) in grad.iter_mut().zip(&self.last) {
                *g += self.l2 * v;
            }
        }
    }

    fn project(&mut self, value: &mut ArrayD<f32>) {
        let min = self.min;
        value.mapv_inplace(|v| if v.is_nan() { min } else { v.max(min) });
        self.last = value.iter().copied().collect();
    }

    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
