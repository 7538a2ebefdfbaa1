//! The weights and inputs of the CSR-versus-dense benchmark (`benches/sparse.rs`), shared
//! with the `sparse_weights` binary that writes them for `compare_sparse.py`, so that
//! the Rust bench and the scipy / numpy comparison see exactly the same matrices.

use ndarray::{Array2, ArrayD, IxDyn};

/// Side of the square weight matrix: 4096 x 4096, an AlexNet-fc-sized layer, too large
/// for the caches, as in Deep Compression's speed-up measurements.
pub const N: usize = 4096;

/// The sparsities the benchmark times.
pub const SPARSITIES: [f64; 7] = [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99];

/// Deterministic pseudo-random values in `[-1, 1)` from SplitMix64 (Steele, Lea and
/// Flood 2014), 24 bits each.
///
/// ```
/// let mut a = deepcompress_benches::sparse::uniform(1);
/// let mut b = deepcompress_benches::sparse::uniform(1);
/// let v: Vec<f32> = (0..100).map(|_| a()).collect();
/// assert_eq!(v, (0..100).map(|_| b()).collect::<Vec<f32>>());
/// assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
/// ```
pub fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

/// An `n x n` weight with values from [`uniform`]`(1)` and a uniformly random fraction
/// `sparsity` of zeros, placed by [`uniform`]`(2)`: entry `i` is zero when
/// `(u2_i + 1) / 2 < sparsity` (in f64). Every sparsity uses the same values and the
/// same draws, so sparser matrices have the zeros of denser ones.
///
/// ```
/// let w = deepcompress_benches::sparse::weight(64, 0.9);
/// let zeros = w.iter().filter(|&&v| v == 0.0).count() as f64 / w.len() as f64;
/// assert!((zeros - 0.9).abs() < 0.02);
/// assert_eq!(deepcompress_benches::sparse::weight(64, 0.0).iter().filter(|&&v| v == 0.0).count(), 0);
/// ```
pub fn weight(n: usize, sparsity: f64) -> ArrayD<f32> {
    let mut r = uniform(1);
    let mut keep = uniform(2);
    ArrayD::from_shape_fn(IxDyn(&[n, n]), |_| {
        let v = r();
        if (keep() as f64 + 1.0) / 2.0 < sparsity { 0.0 } else { v }
    })
}

/// The benchmark input: `n x batch` values from [`uniform`]`(3)`, row-major.
///
/// ```
/// let x = deepcompress_benches::sparse::input(8, 2);
/// assert_eq!(x.dim(), (8, 2));
/// assert_eq!(x[[0, 0]], deepcompress_benches::sparse::uniform(3)());
/// ```
pub fn input(n: usize, batch: usize) -> Array2<f32> {
    let mut r = uniform(3);
    Array2::from_shape_fn((n, batch), |_| r())
}
