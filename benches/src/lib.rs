//! Shared set-up for the deepcompress benchmarks (criterion benches live in `benches/`,
//! comparison scripts next to this crate).

pub mod lowrank;
pub mod sparse;
pub mod weights;

use deepcompress::Result;
use deepcompress::data::Mnist;
use deepcompress::models::lenet_300_100;
use deepcompress::train::{Adam, TrainConfig, Trainer, evaluate};
use std::time::Instant;

/// Median wall time of `repeats` calls of `f` (at least one), after one warm-up call.
pub fn median_secs(repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// The configuration scikit-learn's `MLPClassifier((300, 100))` is timed with in
/// `compare_sklearn.py`: Adam, lr 1e-3, batch 128, 40 epochs, constant rate.
pub fn sklearn_like_config(epochs: usize) -> TrainConfig {
    TrainConfig { epochs, batch_size: 128, lr: 1e-3, seed: 0, ..TrainConfig::default() }
}

/// Trains LeNet-300-100 on the 8,000 embedded training images; returns the wall time in
/// seconds (training only) and the test accuracy.
pub fn time_lenet_300_100(mnist: &Mnist, epochs: usize) -> Result<(f64, f32)> {
    let mut model = lenet_300_100(0);
    let start = Instant::now();
    Trainer::new(sklearn_like_config(epochs)).fit(
        &mut model,
        &mut Adam::default(),
        &mnist.train,
        None,
        |_| {},
    )?;
    let secs = start.elapsed().as_secs_f64();
    Ok((secs, evaluate(&mut model, &mnist.test, 500)?.accuracy))
}
