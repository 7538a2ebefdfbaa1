//! Seeded weight initialisation (PyTorch's defaults, so results are comparable).

use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A deterministic RNG for `seed`: the same seed gives the same bits on every platform.
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in `[-bound, bound)`; with `bound = 1/sqrt(fan_in)` this is PyTorch's
/// default for Linear and Conv2d (Kaiming-uniform with `a = sqrt(5)`).
pub fn uniform(shape: &[usize], bound: f32, rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || (rng.random::<f32>() * 2.0 - 1.0) * bound)
}
