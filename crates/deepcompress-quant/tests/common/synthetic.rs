//! Random-plus-structured weights and realistic activations for the GPTQ comparison,
//! shared by `tests/gptq.rs` and the `gptq_table` bench binary (self-contained: no crate
//! beyond ndarray, so both can include it with `#[path]`).

use ndarray::Array2;

/// SplitMix64: a small seeded generator (same bits on every platform).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let (a, b) = (self.uniform(), self.uniform());
        ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
    }

    pub fn normals(&mut self, rows: usize, cols: usize) -> Array2<f32> {
        Array2::from_shape_simple_fn((rows, cols), || self.normal())
    }
}

/// A `[rows, cols]` weight: rank-16 structure, Gaussian noise of a third of its size, and
/// four outlier input columns eight times larger (the pattern of trained transformer
/// weights), with entries of order `1/sqrt(cols)`.
pub fn structured_weight(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = Rng::new(seed);
    let rank = 16;
    let u = rng.normals(rows, rank);
    let v = rng.normals(rank, cols);
    let scale = 1.0 / (cols as f32).sqrt();
    let mut w =
        u.dot(&v) * (scale / (rank as f32).sqrt()) + rng.normals(rows, cols) * (scale / 3.0);
    for k in 0..4 {
        let c = (k * 997 + 13) % cols;
        w.column_mut(c).mapv_inplace(|x| x * 8.0);
    }
    w
}

/// `n` activation vectors (rows) of dimension `dim` from the distribution numbered
/// `structure` (samples numbered `sample`): a 32-factor latent model (so inputs
/// correlate) plus independent noise, per-channel scales spread over two decades, and
/// heavy tails on one channel in 64 (Student-t with 3 degrees of freedom, times 6), like
/// the outlier features of large language models. Calibration and held-out sets share
/// `structure` and differ in `sample`.
pub fn activations(n: usize, dim: usize, structure: u64, sample: u64) -> Array2<f32> {
    let mut rng = Rng::new(structure);
    let factors = 32;
    let mix = rng.normals(factors, dim) * (1.0 / (factors as f32).sqrt());
    let scales: Vec<f32> = (0..dim).map(|_| 10f32.powf(rng.uniform() as f32 * 2.0 - 1.0)).collect();
    let mixing = Array2::from_shape_fn((factors, dim), |(f, j)| mix[[f, j]] * scales[j]);
    let mut rng = Rng::new(sample.wrapping_mul(0xA24B_AED4_963E_E407) ^ structure);
    let mut x = rng.normals(n, factors).dot(&mixing);
    for ((_, j), v) in x.indexed_iter_mut() {
        *v += 0.3 * scales[j] * rng.normal();
    }
    for j in (0..dim).step_by(64) {
        for i in 0..n {
            let chi2: f32 = (0..3).map(|_| rng.normal().powi(2)).sum();
            x[[i, j]] = 6.0 * rng.normal() / (chi2 / 3.0).sqrt();
        }
    }
    x
}

/// `||(W - Q) Xᵀ||_F / ||W Xᵀ||_F` for activations `x` as rows.
pub fn relative_output_error(w: &Array2<f32>, q: &Array2<f32>, x: &Array2<f32>) -> f64 {
    let norm = |m: &Array2<f32>| m.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    norm(&x.dot(&(w - q).t())) / norm(&x.dot(&w.t()))
}
