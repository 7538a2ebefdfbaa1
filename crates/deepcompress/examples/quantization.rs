//! Quantization of LeNet-5 (Caffe variant) on the embedded MNIST subset: int8 weights and
//! activations after calibration (five calibration methods), 4-bit weights by round to
//! nearest, by GPTQ and by quantization-aware training, ternary (TWN) and binary
//! (BinaryConnect with XNOR scaling) weights, each with its real stored size, its accuracy
//! drop against our float baseline and its test loss (finer than accuracy on 2,000
//! images, where one image is 0.05 points). Trained methods fine-tune for 5 epochs, and a
//! float control is fine-tuned the same way.
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
use deepcompress::quant::{
    BinaryMethod, BinaryScale, Calibration, ConvertBinary, ConvertQat, Gptq, GptqConfig,
    Granularity, PrepareBinary, PrepareQat, QuantScheme, QuantizeWeights, StaticQuantize,
    WeightQat,
};
use deepcompress::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use deepcompress::{CompressionReport, Compressor, Model, Selector};
use std::time::Instant;

/// Shape of one input image.
const INPUT: [usize; 4] = [1, 1, 28, 28];
/// Fine-tuning epochs of the trained methods.
const FINE_TUNE_EPOCHS: usize = 5;
/// Fine-tuning rate of 4-bit QAT: small, since 4-bit steps are fine (at 1e-4 the float
/// model itself, fine-tuned as a control, loses a few test images).
const QAT_LR: f32 = 1e-5;
/// Fine-tuning rate of ternary and binary weights, which have further to move.
const BINARY_LR: f32 = 5e-4;

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
    let loss = evaluate(&mut m, &sets.test, 500)?.loss;
    let (before, after) = (report.total_before.storage_bits, report.total_after.storage_bits);
    println!(
        "| {label} | {} | {:.1}x | {acc:.2} % | {:.2} | {loss:.4} | {:.0} s |",
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
    let base_loss = evaluate(&mut base, &sets.test, 500)?.loss;
    println!("| method | stored bytes | vs f32 | accuracy | drop (points) | test loss | time |");
    println!("|---|---|---|---|---|---|---|");
    println!("| float baseline | {f32_bytes} | 1.0x | {base_acc:.2} % | 0.00 | {base_loss:.4} | |");
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
    let label = "7-bit weights + int8 activations (reduce range), static PTQ, min-max";
    row(label, &base, &sets, base_acc, |p| {
        p.stage(StaticQuantize::new(all()).samples(1000).reduce_range(true))
    })?;
    let w4 = QuantScheme::new(4);
    row("4-bit weights, per channel, round to nearest (PTQ)", &base, &sets, base_acc, |p| {
        p.stage(QuantizeWeights::new(all(), w4))
    })?;
    row("4-bit weights, per channel, GPTQ (PTQ)", &base, &sets, base_acc, |p| {
        p.stage(Gptq::new(all(), w4, GptqConfig::default()))
    })?;
    let g4 = w4.granularity(Granularity::PerGroup { rows: 1, cols: 32 });
    row("4-bit weights, groups of 32, round to nearest (PTQ)", &base, &sets, base_acc, |p| {
        p.stage(QuantizeWeights::new(all(), g4))
    })?;
    let tune = |lr: f32| {
        let data = sets.train.clone();
        move |m: &mut Model| train(m, &data, FINE_TUNE_EPOCHS, lr)
    };
    // The float model fine-tuned like the QAT runs: what the extra epochs alone do.
    let mut control = base.clone();
    train(&mut control, &sets.train, FINE_TUNE_EPOCHS, QAT_LR)?;
    let c = evaluate(&mut control, &sets.test, 500)?;
    println!(
        "| float, {FINE_TUNE_EPOCHS} more epochs at the QAT rate (control) | {f32_bytes} | 1.0x | {:.2} % | {:.2} | {:.4} | |",
        100.0 * c.accuracy,
        base_acc - 100.0 * c.accuracy,
        c.loss
    );
    for (name, weights) in [
        ("4-bit weights, per channel, LSQ QAT", WeightQat::Lsq { bits: 4, per_channel: true }),
        ("4-bit weights, per channel, min-max fake-quant QAT", WeightQat::FakeQuant(w4)),
    ] {
        row(name, &base, &sets, base_acc, |p| {
            p.stage_with_fine_tune(PrepareQat::new(all(), weights), tune(QAT_LR))
                .stage(ConvertQat::new(Selector::all()))
        })?;
    }
    for (name, method) in [
        (
            "ternary weights (TWN), per layer",
            BinaryMethod::Ternary { factor: 0.7, per_channel: false },
        ),
        (
            "binary weights (BinaryConnect + XNOR scaling)",
            BinaryMethod::BinaryConnect(BinaryScale::PerChannel),
        ),
    ] {
        row(name, &base, &sets, base_acc, |p| {
            p.stage_with_fine_tune(PrepareBinary::new(all(), method), tune(BINARY_LR))
                .stage(ConvertBinary::new(Selector::all()))
        })?;
    }
    Ok(())
}
