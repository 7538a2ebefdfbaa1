//! Synthetic weights shaped like a trained layer's, for the k-means benchmarks.

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny seeded generator, so that the Rust
/// bench and `compare_kmeans.py` (which reads the file written by `kmeans_weights`) see
/// exactly the same numbers.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1), never 0 or 1.
    fn open01(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

/// `n` weights from a seeded mixture that looks like a trained fully connected layer:
/// 85 % Laplace(0, 0.02) (the sharp peak at zero), 15 % Normal(0, 0.06) (the wide
/// shoulders), and 0.1 % Normal(±0.25, 0.05) outliers (the few large weights that linear
/// initialisation keeps centroids for).
///
/// ```
/// let w = deepcompress_benches::weights::trained_like(10_000, 42);
/// assert_eq!(w, deepcompress_benches::weights::trained_like(10_000, 42));
/// let mean_abs = w.iter().map(|v| v.abs()).sum::<f32>() / w.len() as f32;
/// assert!((0.01..0.05).contains(&mean_abs));
/// ```
pub fn trained_like(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = SplitMix(seed);
    let normal = |rng: &mut SplitMix| {
        // Box-Muller: one normal per call keeps the stream simple to reproduce.
        let (u, v) = (rng.open01(), rng.open01());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    };
    (0..n)
        .map(|_| {
            let pick = rng.open01();
            let v = if pick < 0.85 {
                let u = rng.open01() - 0.5;
                -0.02 * u.signum() * (1.0 - 2.0 * u.abs()).ln()
            } else if pick < 0.999 {
                0.06 * normal(&mut rng)
            } else {
                let sign = if rng.open01() < 0.5 { -1.0 } else { 1.0 };
                sign * 0.25 + 0.05 * normal(&mut rng)
            };
            v as f32
        })
        .collect()
}
