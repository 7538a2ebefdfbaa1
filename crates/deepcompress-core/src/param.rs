//! Trainable parameters and the [`Constraint`] hook every optimizer honours.

use ndarray::ArrayD;
use std::any::Any;
use std::borrow::Cow;
use std::fmt::Debug;

/// A rule attached to a parameter that survives training.
///
/// This one hook is how every compression family retrains: a pruning mask zeroes pruned
/// weights after each step, a codebook ties shared weights to their centroid, fake
/// quantization rounds in the forward pass and lets gradients through unchanged
/// (the straight-through estimator).
///
/// ```
/// use deepcompress_core::param::{Constraint, Param};
/// use ndarray::{array, ArrayD};
///
/// /// Keeps weights non-negative.
/// #[derive(Debug, Clone)]
/// struct NonNegative;
/// impl Constraint for NonNegative {
///     fn name(&self) -> &'static str { "non-negative" }
///     fn project(&mut self, value: &mut ArrayD<f32>) { value.mapv_inplace(|v| v.max(0.0)); }
///     fn clone_box(&self) -> Box<dyn Constraint> { Box::new(self.clone()) }
///     fn as_any(&self) -> &dyn std::any::Any { self }
/// }
///
/// let mut p = Param::new(array![1.0f32, -1.0].into_dyn());
/// p.set_constraint(Box::new(NonNegative));
/// assert_eq!(p.value(), &array![1.0f32, 0.0].into_dyn());
/// ```
pub trait Constraint: Debug + Send + Sync {
    /// Short name for reports.
    fn name(&self) -> &'static str;
    /// The value the forward pass uses instead of the master weight, if different
    /// (fake quantization). Gradients flow to the master weight unchanged.
    fn forward_value(&self, _master: &ArrayD<f32>) -> Option<ArrayD<f32>> {
        None
    }
    /// Rewrites the gradient before the optimizer step (mask it, sum it per cluster).
    fn adjust_grad(&self, _grad: &mut ArrayD<f32>) {}
    /// Brings the value back onto the constraint set after a step (and when attached).
    fn project(&mut self, value: &mut ArrayD<f32>);
    /// Clones behind a box.
    fn clone_box(&self) -> Box<dyn Constraint>;
    /// For downcasting to the concrete constraint.
    fn as_any(&self) -> &dyn Any;
}

impl Clone for Box<dyn Constraint> {
    fn clone(&self) -> Self {
        self.clone_box()
    }
}

/// A trainable weight with its gradient and optional constraint.
///
/// ```
/// use deepcompress_core::param::Param;
/// use ndarray::array;
/// let mut p = Param::new(array![1.0f32, 2.0].into_dyn());
/// p.accumulate_grad(&array![0.5f32, 0.5].into_dyn());
/// assert_eq!(p.grad(), &array![0.5f32, 0.5].into_dyn());
/// p.zero_grad();
/// assert_eq!(p.grad().sum(), 0.0);
/// ```
#[derive(Debug, Clone)]
pub struct Param {
    value: ArrayD<f32>,
    grad: ArrayD<f32>,
    constraint: Option<Box<dyn Constraint>>,
    /// Frozen parameters keep their value during training.
    pub trainable: bool,
}

impl Param {
    /// A trainable parameter with a zero gradient and no constraint.
    pub fn new(value: ArrayD<f32>) -> Self {
        let value = standard(value);
        let grad = ArrayD::zeros(value.raw_dim());
        Self { value, grad, constraint: None, trainable: true }
    }

    /// Current master value.
    pub fn value(&self) -> &ArrayD<f32> {
        &self.value
    }

    /// Mutable master value (the constraint is not re-applied: call [`Param::project`]).
    pub fn value_mut(&mut self) -> &mut ArrayD<f32> {
        &mut self.value
    }

    /// Replaces the value; the shape must stay the same for the gradient buffer to fit,
    /// otherwise the gradient is reset to the new shape.
    pub fn set_value(&mut self, value: ArrayD<f32>) {
        let value = standard(value);
        if value.shape() != self.grad.shape() {
            self.grad = ArrayD::zeros(value.raw_dim());
        }
        self.value = value;
        self.project();
    }

    /// Accumulated gradient.
    pub fn grad(&self) -> &ArrayD<f32> {
        &self.grad
    }

    /// Mutable gradient (optimizers and layers write here).
    pub fn grad_mut(&mut self) -> &mut ArrayD<f32> {
        &mut self.grad
    }

    /// The value (mutable) and the gradient at once, for optimizers.
    pub fn value_and_grad_mut(&mut self) -> (&mut ArrayD<f32>, &ArrayD<f32>) {
        (&mut self.value, &self.grad)
    }

    /// Adds `g` to the gradient.
    pub fn accumulate_grad(&mut self, g: &ArrayD<f32>) {
        self.grad += g;
    }

    /// Sets the gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// Number of scalar values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True for a parameter with no values.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Attaches a constraint and applies it at once.
    pub fn set_constraint(&mut self, c: Box<dyn Constraint>) {
        self.constraint = Some(c);
        self.project();
    }

    /// Removes and returns the constraint.
    pub fn take_constraint(&mut self) -> Option<Box<dyn Constraint>> {
        self.constraint.take()
    }

    /// The attached constraint, if any.
    pub fn constraint(&self) -> Option<&dyn Constraint> {
        self.constraint.as_deref()
    }

    /// The value the forward pass should use (the constraint's, or the master value).
    pub fn effective(&self) -> Cow<'_, ArrayD<f32>> {
        match self.constraint.as_ref().and_then(|c| c.forward_value(&self.value)) {
            Some(v) => Cow::Owned(v),
            None => Cow::Borrowed(&self.value),
        }
    }

    /// Lets the constraint rewrite the gradient; optimizers call this before a step.
    pub fn adjust_grad(&mut self) {
        if let Some(c) = &self.constraint {
            c.adjust_grad(&mut self.grad);
        }
    }

    /// Re-applies the constraint to the value; optimizers call this after a step.
    pub fn project(&mut self) {
        if let Some(c) = &mut self.constraint {
            c.project(&mut self.value);
        }
    }
}

/// Values are kept in row-major standard layout: layers view weights as matrices without
/// copying, and a transposed or sliced array given by a user must not break that.
fn standard(value: ArrayD<f32>) -> ArrayD<f32> {
    if value.is_standard_layout() { value } else { value.as_standard_layout().into_owned() }
}
