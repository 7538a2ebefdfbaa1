//! LeNet-5 (Caffe variant) on the embedded MNIST split: a float baseline, then from that
//! baseline 4-bit weights by round-to-nearest PTQ and by quantization-aware fine-tuning
//! (LSQ learned steps, and min-max fake quantization); 4-bit weights with 4- and 2-bit
//! activations (the ReLU's output), and with 4-bit codes at every layer's input,
//! calibrated without training and then trained with LSQ; ternary weights (TWN) and binary weights (BinaryConnect with XNOR-Net scaling),
//! each converted to stored low-bit layers; prints accuracy and stored size (every layer
//! compressed, biases f32; quantized activations are simulated in f32).
//!
//! ```text
//! cargo run --release --example qat_lenet5 [-- BASE_EPOCHS FINE_TUNE_EPOCHS]
//! ```
//!
//! With `QAT_LENET5_BASE=file.safetensors` the baseline is loaded from that file when it
//! exists and saved there otherwise.

use deepcompress::Model;
use deepcompress::core::layer::Layer;
use deepcompress::core::model::Selector;
use deepcompress::core::pass::{Pass, PassContext};
use deepcompress::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::models::lenet5;
use deepcompress::quant::{
    ActQat, BinaryMethod, BinaryScale, CalibrateActivations, Calibration, ConvertBinary,
    ConvertQat, Granularity, LsqActivation, PrepareBinary, PrepareQat, QuantScheme,
    QuantizeWeights, WeightQat,
};
use deepcompress::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use std::time::Instant;

/// Fine-tuning rate of the 4-bit runs (and of the float control): a tenth of the rate the
/// baseline ended its cosine schedule from is enough to move weights across 4-bit steps.
const QAT_LR: f32 = 1e-5;
/// Fine-tuning rate of the 3- and 2-bit QAT runs.
const LOW_BIT_LR: f32 = 1e-4;
/// Fine-tuning rate of the ternary and binary runs, whose weights move further.
const BINARY_LR: f32 = 5e-4;

fn fit(model: &mut Model, train: &Dataset, epochs: usize, lr: f32) -> deepcompress::Result<()> {
    let cfg = TrainConfig {
        epochs,
        batch_size: 128,
        lr,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(model, &mut Adam::default(), train, None, |_| {})?;
    Ok(())
}

fn row(
    name: &str,
    model: &mut Model,
    test: &Dataset,
    base: Option<(f32, u64)>,
) -> deepcompress::Result<(f32, u64)> {
    let acc = evaluate(model, test, 500)?.accuracy;
    let bits = model.summary(&[1, 1, 28, 28])?.total().storage_bits;
    let (change, ratio) =
        base.map_or((0.0, 1.0), |(a, b)| (100.0 * (acc - a), b as f64 / bits as f64));
    println!(
        "| {name} | {:.2} | {change:+.2} | {:.1} | {ratio:.1}x |",
        100.0 * acc,
        bits as f64 / 8.0 / 1024.0
    );
    Ok((acc, bits))
}

/// Rows for a model whose activation quantizers `PrepareQat` has placed: post-training
/// under each calibration (on the context's data), then LSQ QAT from the MSE-calibrated
/// start.
#[allow(clippy::too_many_arguments)]
fn calibrated_rows(
    start: &Model,
    what: &str,
    calibrations: &[(&str, Calibration)],
    ctx: &mut PassContext<'_>,
    train: &Dataset,
    test: &Dataset,
    base: (f32, u64),
    ft: usize,
) -> deepcompress::Result<()> {
    let all = Selector::all();
    for &(label, cal) in calibrations {
        let mut ptq = start.clone();
        CalibrateActivations::new(all.clone(), cal).apply(&mut ptq, ctx)?;
        let mut qat = ptq.clone();
        ConvertQat::new(all.clone()).apply(&mut ptq, ctx)?;
        let name = format!("4-bit weights, {what}, PTQ ({label} calibration)");
        row(&name, &mut ptq, test, Some(base))?;
        if cal == Calibration::Mse {
            fit(&mut qat, train, ft, LOW_BIT_LR)?;
            ConvertQat::new(all.clone()).apply(&mut qat, ctx)?;
            let name = format!(
                "4-bit weights, {what}, LSQ QAT from MSE ({ft} epochs, lr {LOW_BIT_LR:.0e})"
            );
            row(&name, &mut qat, test, Some(base))?;
        }
    }
    Ok(())
}

fn main() -> deepcompress::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let base_epochs = args.first().copied().unwrap_or(20);
    let ft = args.get(1).copied().unwrap_or(5);
    let raw = Mnist::embedded()?;
    let train = raw.train.normalize(MNIST_MEAN, MNIST_STD)?;
    let test = raw.test.normalize(MNIST_MEAN, MNIST_STD)?;
    println!(
        "MNIST subset: {} train / {} test; baseline {base_epochs} epochs, fine-tuning {ft}\n",
        train.len(),
        test.len()
    );
    let start = Instant::now();
    let mut float = lenet5(0);
    match std::env::var("QAT_LENET5_BASE") {
        Ok(path) if std::path::Path::new(&path).exists() => {
            float.load_safetensors(&path)?;
        }
        saved => {
            fit(&mut float, &train, base_epochs, 1e-3)?;
            if let Ok(path) = saved {
                float.save_safetensors(&path)?;
            }
        }
    }
    println!("| model | accuracy % | change (points) | stored KiB | ratio |");
    println!("|---|---|---|---|---|");
    let base = row("float baseline", &mut float, &test, None)?;
    let all = Selector::all();
    let mut ctx = PassContext::new(0);

    // Control: the float model fine-tuned as long as the 4-bit ones, so that changes from
    // the extra epochs are not credited to quantization.
    let mut control = float.clone();
    fit(&mut control, &train, ft, QAT_LR)?;
    row(
        &format!("float, {ft} more epochs, lr {QAT_LR:.0e} (control)"),
        &mut control,
        &test,
        Some(base),
    )?;

    // 4 bits per channel and per layer, with both QAT flavours; 3 and 2 bits per channel,
    // where round-to-nearest starts to lose accuracy, with LSQ at a higher rate (its steps
    // and the weights have further to move on a coarser grid).
    let configs = [
        (4u8, Granularity::PerChannel, QAT_LR, true),
        (4, Granularity::PerTensor, QAT_LR, true),
        (3, Granularity::PerChannel, LOW_BIT_LR, false),
        (2, Granularity::PerChannel, LOW_BIT_LR, false),
    ];
    for (bits, g, lr, both) in configs {
        let label = if g == Granularity::PerChannel { "per channel" } else { "per layer" };
        let mut ptq = float.clone();
        QuantizeWeights::new(all.clone(), QuantScheme::new(bits).granularity(g))
            .apply(&mut ptq, &mut ctx)?;
        row(&format!("{bits}-bit RTN PTQ ({label})"), &mut ptq, &test, Some(base))?;
        let lsq = ("LSQ", WeightQat::Lsq { bits, per_channel: g == Granularity::PerChannel });
        let minmax =
            ("min-max fake-quant", WeightQat::FakeQuant(QuantScheme::new(bits).granularity(g)));
        let runs = if both { vec![lsq, minmax] } else { vec![lsq] };
        for (name, weights) in runs {
            let mut qat = float.clone();
            PrepareQat::new(all.clone(), weights).apply(&mut qat, &mut ctx)?;
            fit(&mut qat, &train, ft, lr)?;
            ConvertQat::new(all.clone()).apply(&mut qat, &mut ctx)?;
            let name = format!("{bits}-bit {name} QAT ({label}, {ft} epochs, lr {lr:.0e})");
            row(&name, &mut qat, &test, Some(base))?;
        }
    }

    // 4-bit weights (per channel, min-max grid) and LSQ activation quantizers on the ReLU:
    // post-training (steps from min-max or MSE calibration on 512 training images), then
    // LSQ QAT from the MSE-calibrated start.
    let mut calib_ctx = PassContext::new(0).with_calibration(&train);
    for abits in [4u8, 2] {
        let mut start = float.clone();
        let w4 = WeightQat::FakeQuant(QuantScheme::new(4).granularity(Granularity::PerChannel));
        PrepareQat::new(all.clone(), w4)
            .activations(ActQat::Lsq { bits: abits })
            .apply(&mut start, &mut calib_ctx)?;
        let calibrations = [("min-max", Calibration::MinMax), ("MSE", Calibration::Mse)];
        let what = format!("{abits}-bit activations");
        calibrated_rows(&start, &what, &calibrations, &mut calib_ctx, &train, &test, base, ft)?;
    }

    // 4-bit codes at the input of every Conv2d and Linear: signed LSQ quantizers before
    // conv1 and after each pooling (LeNet-5's convolutions have no ReLU) beside the ReLU's
    // unsigned one, with 4-bit weights; post-training under three calibrations, then LSQ
    // QAT from the MSE start.
    let mut every = float.clone();
    let signed = || -> deepcompress::Result<Box<dyn Layer>> {
        let q = LsqActivation::new(4, true).map_err(|e| e.into_core("input quantizer"))?;
        Ok(Box::new(q))
    };
    let conv1 = every.layer("conv1")?.clone_box();
    every.replace_with_sequence("conv1", vec![signed()?, conv1])?;
    for pool in ["pool1", "pool2"] {
        let layer = every.layer(pool)?.clone_box();
        every.replace_with_sequence(pool, vec![layer, signed()?])?;
    }
    let w4 = WeightQat::FakeQuant(QuantScheme::new(4).granularity(Granularity::PerChannel));
    PrepareQat::new(all.clone(), w4)
        .activations(ActQat::Lsq { bits: 4 })
        .apply(&mut every, &mut calib_ctx)?;
    let calibrations =
        [("min-max", Calibration::MinMax), ("MSE", Calibration::Mse), ("KL", Calibration::Kl)];
    let what = "every layer input at 4 bits";
    calibrated_rows(&every, what, &calibrations, &mut calib_ctx, &train, &test, base, ft)?;

    let methods = [
        ("TWN ternary, per layer", BinaryMethod::Ternary { factor: 0.7, per_channel: false }),
        ("BinaryConnect + XNOR scaling", BinaryMethod::BinaryConnect(BinaryScale::PerChannel)),
    ];
    for (name, method) in methods {
        let mut m = float.clone();
        PrepareBinary::new(all.clone(), method).apply(&mut m, &mut ctx)?;
        fit(&mut m, &train, ft, BINARY_LR)?;
        ConvertBinary::new(all.clone()).apply(&mut m, &mut ctx)?;
        row(&format!("{name} ({ft} epochs, lr {BINARY_LR:.0e})"), &mut m, &test, Some(base))?;
    }
    println!("\n{:.0} s in all", start.elapsed().as_secs_f64());
    Ok(())
}
