//! Quantization of LeNet-5 (Caffe variant) on the embedded MNIST subset: int8 weights and
//! activations after calibration, 4-bit weights, and the trained low-bit methods, each
//! with its real stored size and its accuracy drop against our float baseline.
//!
//! ```text
//! cargo run --release --example quantization
//! ```
//!
//! The baseline trains on 7,000 of the 8,000 training images; the other 1,000 are the
//! calibration set. Accuracies are on the 2,000 test images. Sizes are the exact bits of
//! every stored tensor (codes, scales, zero points, biases) as the model summary counts
//! them, in bytes.

use deepcompress::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::models::lenet5;
use deepcompress::quant::{Calibration, Granularity, QuantScheme, QuantizeWeights, StaticQuantize};
use deepcompress::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use deepcompress::{CompressionReport, Compressor, Model, Selector};
use std::time::Instant;

/// Shape of one input image.
const INPUT: [usize; 4] = [1, 1, 28, 28];

fn train(model: &mut Model, data: &Dataset, epochs: usize, lr: f32) -> deepcompress::Result<()> {
    let cfg = TrainConfig {
        epochs,
        batch_size: 128,
        lr,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(model, &mut Adam::default(), data, None, |_| {}).map(|_| ())
}

/// The data every row uses.
struct Sets {
    train: Dataset,
    calib: Dataset,
    test: Dataset,
}

/// Runs one pipeline on a copy of `base` and prints its table row.
fn row(
    label: &str,
    base: &Model,
    sets: &Sets,
    base_acc: f32,
    build: impl FnOnce(Compressor) -> Compressor,
) -> deepcompress::Result<CompressionReport> {
    let start = Instant::now();
    let mut m = base.clone();
    let test = sets.test.clone();
    let pipeline = Compressor::new(&INPUT)
        .calibration(sets.calib.clone())
        .evaluator(move |m| Ok(evaluate(m, &test, 500)?.accuracy));
    let report = build(pipeline).run(&mut m)?;
    let acc = 100.0 * report.accuracy_after.unwrap_or(f32::NAN);
    let (before, after) = (report.total_before.storage_bits, report.total_after.storage_bits);
    println!(
        "| {label} | {} | {:.1}x | {acc:.2} % | {:.2} | {:.0} s |",
        after / 8,
        before as f64 / after as f64,
        base_acc - acc,
        start.elapsed().as_secs_f64()
    );
    Ok(report)
}

fn main() -> deepcompress::Result<()> {
    let raw = Mnist::embedded()?;
    let all = raw.train.normalize(MNIST_MEAN, MNIST_STD)?;
    let sets = Sets {
        train: all.subset(&(0..7000).collect::<Vec<_>>())?,
        calib: all.subset(&(7000..8000).collect::<Vec<_>>())?,
        test: raw.test.normalize(MNIST_MEAN, MNIST_STD)?,
    };
    let start = Instant::now();
    let mut base = lenet5(0);
    train(&mut base, &sets.train, 20, 1e-3)?;
    let base_acc = 100.0 * evaluate(&mut base, &sets.test, 500)?.accuracy;
    let f32_bytes = base.summary(&INPUT)?.total().storage_bits / 8;
    println!(
        "LeNet-5 baseline: {base_acc:.2} % test accuracy, {f32_bytes} bytes in f32 ({:.0} s)\n",
        start.elapsed().as_secs_f64()
    );
    println!("| method | stored bytes | vs f32 | accuracy | drop (points) | time |");
    println!("|---|---|---|---|---|---|");
    let all = || Selector::kinds(&["Linear", "Conv2d"]);
    for (name, c) in [
        ("min-max", Calibration::MinMax),
        ("moving average", Calibration::MovingAverage { momentum: 0.9 }),
        ("percentile 99.99", Calibration::Percentile { percent: 99.99 }),
        ("MSE", Calibration::Mse),
        ("KL", Calibration::Kl),
    ] {
        let label = format!("int8 weights + activations, static PTQ, {name}");
        row(&label, &base, &sets, base_acc, |p| {
            p.stage(StaticQuantize::new(all()).calibration(c).samples(1000))
        })?;
    }
    let w4 = QuantScheme::new(4);
    row("4-bit weights, per channel, round to nearest (PTQ)", &base, &sets, base_acc, |p| {
        p.stage(QuantizeWeights::new(all(), w4))
    })?;
    let g4 = w4.granularity(Granularity::PerGroup { rows: 1, cols: 32 });
    row("4-bit weights, groups of 32, round to nearest (PTQ)", &base, &sets, base_acc, |p| {
        p.stage(QuantizeWeights::new(all(), g4))
    })?;
    Ok(())
}
