//! Seeded weight initialisation (PyTorch's defaults, so results are comparable).

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How a layer's weights are drawn.
///
/// ```
/// use deepcompress_core::layer::{Init, Linear};
/// let fc = Linear::with_init(784, 300, true, Init::Glorot, 0);
/// let bound = (6.0f32 / (784.0 + 300.0)).sqrt();
/// assert!(fc.weight.value().iter().all(|w| w.abs() <= bound));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// Uniform in `±1/sqrt(fan_in)`: PyTorch's default for Linear and Conv2d
    /// (Kaiming-uniform with `a = sqrt(5)`); biases alike.
    #[default]
    FanIn,
    /// Uniform in `±sqrt(6/(fan_in + fan_out))` (Glorot and Bengio 2010), biases alike:
    /// scikit-learn's initialisation for ReLU MLPs.
    Glorot,
}

impl Init {
    /// The uniform bound for a layer with these fan-in and fan-out.
    pub fn bound(self, fan_in: usize, fan_out: usize) -> f32 {
        match self {
            Init::FanIn => 1.0 / (fan_in.max(1) as f32).sqrt(),
            Init::Glorot => (6.0 / (fan_in + fan_out).max(1) as f32).sqrt(),
        }
    }
}

/// A deterministic RNG for `seed`: the same seed gives the same bits on every platform.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in `[-bound, bound)`; with `bound = 1/sqrt(fan_in)` this is PyTorch's
/// default for Linear and Conv2d (Kaiming-uniform with `a = sqrt(5)`).
pub fn uniform(shape: &[usize], bound: f32, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || (rng.random::<f32>() * 2.0 - 1.0) * bound)
}
