//! Inputs of the low-rank benchmarks: weight-like matrices with a decaying spectrum.

use ndarray::Array2;

/// A deterministic standard-normal-ish matrix (sum of uniforms), from `seed`.
fn noise(shape: (usize, usize), seed: u64) -> Array2<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        // xorshift64*: fast, portable, and good enough for benchmark inputs.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    };
    Array2::from_shape_simple_fn(shape, || {
        // Irwin–Hall with 4 terms, rescaled to unit variance.
        ((next() + next() + next() + next()) - 2.0) * 3.0_f32.sqrt()
    })
}

/// An `m x n` "random-plus-structured" weight: a power-law spectrum (`σᵢ ∝ i^-0.8`, as
/// trained layers show) carried by random factors, plus dense noise at about the level
/// of the 200th component. Deterministic in `seed`.
pub fn weight_like(m: usize, n: usize, seed: u64) -> Array2<f32> {
    let k = m.min(n).min(512);
    let left = noise((m, k), seed);
    let mut right = noise((k, n), seed + 1);
    for (i, mut row) in right.rows_mut().into_iter().enumerate() {
        row *= 1.0 / (1.0 + i as f32).powf(0.8) / (m as f32).sqrt();
    }
    let structured = left.dot(&right);
    let level = 1.0 / 200f32.powf(0.8) / (m.max(n) as f32).sqrt();
    structured + noise((m, n), seed + 2) * level
}
