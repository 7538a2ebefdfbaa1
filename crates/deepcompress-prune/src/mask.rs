//! [`Mask`]: the constraint that keeps pruned weights at zero through retraining.

use deepcompress_core::param::{Constraint, Param};
use ndarray::{ArrayD, Zip};
use std::any::Any;

/// Keeps pruned weights at exactly zero: their gradient is zeroed before each optimizer
/// step and their value after it (Han et al. 2015, arXiv 1506.02626, retrain with the
/// mask fixed).
///
/// ```
/// use deepcompress_core::param::Param;
/// use deepcompress_prune::Mask;
/// use ndarray::array;
/// let mut p = Param::new(array![1.0f32, 2.0, 3.0].into_dyn());
/// p.set_constraint(Box::new(Mask::new(array![true, false, true].into_dyn())));
/// assert_eq!(p.value(), &array![1.0f32, 0.0, 3.0].into_dyn());
/// assert_eq!(Mask::of(&p).unwrap().sparsity(), 1.0 / 3.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    keep: ArrayD<bool>,
}

impl Mask {
    /// A mask that keeps the weights where `keep` is true.
    pub fn new(keep: ArrayD<bool>) -> Self {
        Self { keep }
    }

    /// Which weights are kept.
    pub fn keep(&self) -> &ArrayD<bool> {
        &self.keep
    }

    /// Fraction of weights pruned.
    pub fn sparsity(&self) -> f64 {
        if self.keep.is_empty() {
            return 0.0;
        }
        self.keep.iter().filter(|k| !**k).count() as f64 / self.keep.len() as f64
    }

    /// The mask attached to `param`, if its constraint is one.
    pub fn of(param: &Param) -> Option<&Mask> {
        param.constraint().and_then(|c| c.as_any().downcast_ref::<Mask>())
    }
}

impl Constraint for Mask {
    fn name(&self) -> &'static str {
        "prune-mask"
    }

    fn adjust_grad(&self, grad: &mut ArrayD<f32>) {
        Zip::from(grad).and(&self.keep).for_each(|g, k| {
            if !k {
                *g = 0.0;
            }
        });
    }

    fn project(&mut self, value: &mut ArrayD<f32>) {
        Zip::from(value).and(&self.keep).for_each(|v, k| {
            if !k {
                *v = 0.0;
            }
        });
    }

    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
