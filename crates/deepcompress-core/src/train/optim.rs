//! Optimizers. Each step lets the parameter's constraint adjust the gradient first and
//! re-project the value afterwards: that is how masks, codebooks and fake quantization
//! survive retraining.

use crate::model::Model;
use crate::ops::worth_parallel;
use crate::param::Param;
use crate::{CoreError, Result};
use ndarray::{ArrayD, ArrayView1, ArrayViewMut1, Zip};
use std::collections::HashMap;

/// Updates a model's parameters from their gradients.
///
/// ```
/// use deepcompress_core::models::mlp;
/// use deepcompress_core::train::{Optimizer, Sgd};
/// let mut m = mlp(&[2, 1], 0).unwrap();
/// m.for_each_param_mut(|_, p| p.grad_mut().fill(1.0));
/// let before = m.state_dict().get_f32("fc1.bias").unwrap()[[0]];
/// Sgd::new(0.0).unwrap().step(&mut m, 0.5);
/// assert_eq!(m.state_dict().get_f32("fc1.bias").unwrap()[[0]], before - 0.5);
/// ```
pub trait Optimizer: Send {
    /// One update with learning rate `lr`.
    fn step(&mut self, model: &mut Model, lr: f32);
    /// Forgets per-parameter state (momentum, moments), for example after surgery.
    fn reset(&mut self);
}

/// A contiguous parameter-shaped array as one flat vector, so that element-wise updates
/// vectorise and split cleanly across threads.
fn flat_mut(a: &mut ArrayD<f32>) -> ArrayViewMut1<'_, f32> {
    ArrayViewMut1::from(a.as_slice_memory_order_mut().expect("parameters are contiguous"))
}

fn flat(a: &ArrayD<f32>) -> ArrayView1<'_, f32> {
    ArrayView1::from(a.as_slice_memory_order().expect("parameters are contiguous"))
}

/// Runs an element-wise update over a zip, in parallel when the arrays are large.
macro_rules! update {
    ($len:expr, $zip:expr, $f:expr) => {
        if worth_parallel($len) { $zip.par_for_each($f) } else { $zip.for_each($f) }
    };
}

/// Runs `update` on every trainable parameter between the constraint hooks, creating
/// per-parameter state of the parameter's shape (and renewing it if the shape changed).
fn for_each_trainable<S>(
    model: &mut Model,
    state: &mut HashMap<String, S>,
    new_state: impl Fn(&ArrayD<f32>) -> S,
    shape_of: impl Fn(&S) -> &[usize],
    mut update: impl FnMut(&mut Param, &mut S),
) {
    model.for_each_param_mut(|name, p| {
        if !p.trainable {
            return;
        }
        p.adjust_grad();
        let s = state.entry(name.to_string()).or_insert_with(|| new_state(p.value()));
        if shape_of(s) != p.value().shape() {
            *s = new_state(p.value());
        }
        update(p, s);
        p.project();
    });
}

/// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay
/// (PyTorch's formulation: `v = μv + g + λw`, `w -= lr·v`).
///
/// ```
/// use deepcompress_core::train::Sgd;
/// let opt = Sgd::new(0.9).unwrap().nesterov(true).weight_decay(5e-4).unwrap();
/// assert!(Sgd::new(1.5).is_err());
/// # let _ = opt;
/// ```
#[derive(Debug, Clone)]
pub struct Sgd {
    momentum: f32,
    nesterov: bool,
    weight_decay: f32,
    velocity: HashMap<String, ArrayD<f32>>,
}

impl Sgd {
    /// SGD with momentum in `[0, 1)`.
    pub fn new(momentum: f32) -> Result<Self> {
        if !(0.0..1.0).contains(&momentum) {
            return Err(CoreError::param("Sgd momentum", momentum, "must be in [0, 1)"));
        }
        Ok(Self { momentum, nesterov: false, weight_decay: 0.0, velocity: HashMap::new() })
    }

    /// Uses Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        self.nesterov = on;
        self
    }

    /// L2 weight decay (non-negative, finite).
    pub fn weight_decay(mut self, wd: f32) -> Result<Self> {
        if !(wd >= 0.0 && wd.is_finite()) {
            return Err(CoreError::param("Sgd weight_decay", wd, "must be finite and >= 0"));
        }
        self.weight_decay = wd;
        Ok(self)
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, model: &mut Model, lr: f32) {
        let (mu, nesterov, wd) = (self.momentum, self.nesterov, self.weight_decay);
        for_each_trainable(
            model,
            &mut self.velocity,
            |v| ArrayD::zeros(v.raw_dim()),
            |s| s.shape(),
            |p, v| {
                let (w, g) = p.value_and_grad_mut();
                let zip = Zip::from(flat_mut(w)).and(flat(g)).and(flat_mut(v));
                update!(g.len(), zip, |w: &mut f32, &g: &f32, v: &mut f32| {
                    let g = g + wd * *w;
                    *v = mu * *v + g;
                    *w -= lr * if nesterov { g + mu * *v } else { *v };
                });
            },
        );
    }

    fn reset(&mut self) {
        self.velocity.clear();
    }
}

/// Adam (Kingma and Ba 2014, arXiv 1412.6980) with bias correction; with
/// [`Adam::decoupled`] it is AdamW (Loshchilov and Hutter 2017, arXiv 1711.05101).
///
/// ```
/// use deepcompress_core::train::Adam;
/// let adamw = Adam::default().weight_decay(1e-2).unwrap().decoupled(true);
/// assert!(Adam::default().betas(1.0, 0.999).is_err());
/// # let _ = adamw;
/// ```
#[derive(Debug, Clone)]
pub struct Adam {
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
    moments: HashMap<String, Moments>,
}

#[derive(Debug, Clone)]
struct Moments {
    m: ArrayD<f32>,
    v: ArrayD<f32>,
    t: i32,
}

impl Default for Adam {
    /// PyTorch's defaults: betas (0.9, 0.999), eps 1e-8, no weight decay.
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            moments: HashMap::new(),
        }
    }
}

impl Adam {
    /// Sets the moment decay rates, each in `[0, 1)`.
    pub fn betas(mut self, beta1: f32, beta2: f32) -> Result<Self> {
        for (name, b) in [("Adam beta1", beta1), ("Adam beta2", beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(CoreError::param(name, b, "must be in [0, 1)"));
            }
        }
        self.beta1 = beta1;
        self.beta2 = beta2;
        Ok(self)
    }

    /// Weight decay: L2 added to the gradient, or decoupled (AdamW) when enabled.
    pub fn weight_decay(mut self, wd: f32) -> Result<Self> {
        if !(wd >= 0.0 && wd.is_finite()) {
            return Err(CoreError::param("Adam weight_decay", wd, "must be finite and >= 0"));
        }
        self.weight_decay = wd;
        Ok(self)
    }

    /// Decoupled weight decay (AdamW).
    pub fn decoupled(mut self, on: bool) -> Self {
        self.decoupled = on;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, model: &mut Model, lr: f32) {
        let (b1, b2, eps, wd, decoupled) =
            (self.beta1, self.beta2, self.eps, self.weight_decay, self.decoupled);
        for_each_trainable(
            model,
            &mut self.moments,
            |v| Moments { m: ArrayD::zeros(v.raw_dim()), v: ArrayD::zeros(v.raw_dim()), t: 0 },
            |s| s.m.shape(),
            |p, s| {
                s.t += 1;
                let c1 = 1.0 - b1.powi(s.t);
                let c2 = 1.0 - b2.powi(s.t);
                let step = lr / c1;
                let (w, g) = p.value_and_grad_mut();
                let zip = Zip::from(flat_mut(w))
                    .and(flat(g))
                    .and(flat_mut(&mut s.m))
                    .and(flat_mut(&mut s.v));
                update!(g.len(), zip, |w: &mut f32, &g: &f32, m: &mut f32, v: &mut f32| {
                    let g = if decoupled { g } else { g + wd * *w };
                    if decoupled {
                        *w -= lr * wd * *w;
                    }
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *w -= step * *m / ((*v / c2).sqrt() + eps);
                });
            },
        );
    }

    fn reset(&mut self) {
        self.moments.clear();
    }
}
