//! Low-rank factorisation of LeNet-300-100 and LeNet-5 on the embedded MNIST subset.
//!
//! For each model it trains a baseline, then factorises every Linear and Conv2d layer to
//! about a quarter of their parameters four ways: uniform ranks (every layer at 25 %) or
//! one global budget with the same total, each with plain SVD or data-aware (whitened)
//! factors, and prints the test accuracy of each before any fine-tuning. The global,
//! data-aware model is then fine-tuned for at most 5 epochs in the `Compressor` pipeline,
//! whose report is printed.
//!
//! ```text
//! cargo run --release --example low_rank          # both models
//! cargo run --release --example low_rank mlp      # LeNet-300-100 only (or `cnn`)
//! ```
//!
//! The baselines train on 7,000 of the 8,000 training images; the other 1,000 are the
//! calibration set of the data-aware factorisation. Accuracies are on the 2,000 test images.

use deepcompress::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::lowrank::rank::{Budget, Rank};
use deepcompress::lowrank::{ConvMethod, ConvRanks, DecomposeConv, LowRank, Plan};
use deepcompress::models::{lenet_300_100, lenet5};
use deepcompress::pass::PassContext;
use deepcompress::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use deepcompress::{CompressionReport, Compressor, Model, Selector};
use std::time::Instant;

/// Fraction of the Linear and Conv2d parameters kept.
const KEEP: f64 = 0.25;
/// Fine-tuning epochs after factorisation (the issue allows at most 5).
const FINE_TUNE_EPOCHS: usize = 5;
/// Fine-tuning learning rate (Adam, cosine to zero): a fifth of the baseline's.
const FINE_TUNE_LR: f32 = 2e-4;

fn train(
    model: &mut Model,
    data: &Dataset,
    epochs: usize,
    lr: f32,
    batch: usize,
) -> deepcompress::Result<()> {
    let cfg = TrainConfig {
        epochs,
        batch_size: batch,
        lr,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(model, &mut Adam::default(), data, None, |_| {}).map(|_| ())
}

fn accuracy(model: &mut Model, test: &Dataset) -> deepcompress::Result<f32> {
    Ok(100.0 * evaluate(model, test, 500)?.accuracy)
}

/// Applies `pass` to a copy of `model`; returns the copy, its plan and its accuracy.
fn factorise(
    pass: &LowRank,
    model: &Model,
    calib: &Dataset,
    test: &Dataset,
) -> deepcompress::Result<(Model, Plan, f32)> {
    use deepcompress::pass::Pass;
    let mut m = model.clone();
    let mut ctx = PassContext::new(0).with_calibration(calib);
    let plan = pass.plan(&mut m, &ctx).map_err(|e| e.into_core("plan"))?;
    pass.apply(&mut m, &mut ctx)?;
    let acc = accuracy(&mut m, test)?;
    Ok((m, plan, acc))
}

fn run(
    name: &str,
    model: Model,
    batch: usize,
    (train_set, calib, test): (&Dataset, &Dataset, &Dataset),
) -> deepcompress::Result<()> {
    println!("## {name}\n");
    let start = Instant::now();
    let mut base = model;
    train(&mut base, train_set, 20, 1e-3, batch)?;
    let base_acc = accuracy(&mut base, test)?;
    println!(
        "baseline: {base_acc:.2} % test accuracy, {} parameters ({:.0} s)\n",
        base.num_params(),
        start.elapsed().as_secs_f64()
    );

    let all = Selector::kinds(&["Linear", "Conv2d"]);
    let uniform = LowRank::new(all.clone(), Rank::ParamFraction(KEEP));
    let (_, uniform_plan, _) = factorise(&uniform, &base, calib, test)?;
    // The global budget gets exactly the parameters the uniform ranks use.
    let same_total = Budget::Params(uniform_plan.params().1);
    let global = LowRank::global(all.clone(), same_total);
    let samples = calib.len();
    let runs = [
        ("uniform ranks, plain SVD", uniform.clone()),
        ("uniform ranks, data-aware", uniform.clone().data_aware(samples)),
        ("global budget, plain SVD", global.clone()),
        ("global budget, data-aware", global.clone().data_aware(samples)),
    ];
    println!("Before fine-tuning ({:.0} % of the Linear and Conv2d parameters):\n", 100.0 * KEEP);
    println!("| factorisation | parameters kept | ranks | test accuracy | drop (points) |");
    println!("|---|---:|---|---:|---:|");
    let mut plans = Vec::new();
    for (label, pass) in &runs {
        let (_, plan, acc) = factorise(pass, &base, calib, test)?;
        let (b, a) = plan.params();
        let ranks: Vec<String> =
            plan.rows.iter().map(|r| r.rank.map_or("dense".into(), |k| k.to_string())).collect();
        println!(
            "| {label} | {a} of {b} ({:.1} %) | {} | {acc:.2} % | {:.2} |",
            100.0 * a as f64 / b as f64,
            ranks.join(", "),
            base_acc - acc
        );
        plans.push(plan);
    }
    println!("\nGlobal budget, data-aware plan:\n\n{}", plans[3].to_markdown());

    println!("One layer at a time, equal ranks, before fine-tuning (other layers dense):\n");
    println!("| layer | rank | parameters of the layer | plain SVD | data-aware | ");
    println!("|---|---:|---:|---:|---:|");
    let sweep: &[(&str, &[usize])] = if name == "LeNet-5" {
        &[("fc1", &[4, 8, 16, 32]), ("conv2", &[2, 4, 8, 16])]
    } else {
        &[("fc1", &[4, 8, 16, 32]), ("fc2", &[2, 4, 8, 16])]
    };
    for (layer, ranks) in sweep {
        for &r in *ranks {
            let one = LowRank::new(Selector::path(layer), Rank::Fixed(r));
            let (_, plan, plain) = factorise(&one, &base, calib, test)?;
            let (_, _, aware) = factorise(&one.clone().data_aware(samples), &base, calib, test)?;
            let row = &plan.rows[0];
            println!(
                "| {layer} | {r} | {} of {} | {plain:.2} % | {aware:.2} % |",
                row.params_after, row.params_before
            );
        }
    }
    println!();

    println!("After at most {FINE_TUNE_EPOCHS} epochs of fine-tuning:\n");
    println!("| factorisation | parameters kept | MACs kept | test accuracy | drop (points) |");
    println!("|---|---:|---:|---:|---:|");
    let mut tuned = vec![
        ("uniform ranks, data-aware", runs[1].1.clone()),
        ("global budget, data-aware", runs[3].1.clone()),
    ];
    if name == "LeNet-5" {
        // A MAC budget makes the allocator factor the convolutions too.
        let macs = LowRank::global(all, Budget::MacFraction(KEEP)).data_aware(samples);
        tuned.push(("global MAC budget (25 %), data-aware", macs));
        // The same budget with the convolutions offered as Tucker-2.
        let tucker =
            LowRank::global(Selector::kinds(&["Linear", "Conv2d"]), Budget::MacFraction(KEEP))
                .tucker_convs()
                .data_aware(samples);
        tuned.push(("global MAC budget (25 %), Tucker-2 convolutions, data-aware Linears", tucker));
    }
    let mut reports = Vec::new();
    for (label, pass) in tuned {
        let mut m = base.clone();
        let ft = train_set.clone();
        let eval_set = test.clone();
        let report = Compressor::new(&[1, 1, 28, 28])
            .calibration(calib.clone())
            .stage_with_fine_tune(pass, move |m| {
                train(m, &ft, FINE_TUNE_EPOCHS, FINE_TUNE_LR, batch)
            })
            .evaluator(move |m| Ok(evaluate(m, &eval_set, 500)?.accuracy))
            .run(&mut m)?;
        print_row(label, &report, base_acc);
        reports.push((label, report));
    }
    if name == "LeNet-5" {
        // Tucker-2 of conv2 with VBMF ranks (Kim et al.), then one global budget for the
        // other layers; a single fine-tuning at the end.
        let label = "conv2 Tucker-2 (VBMF ranks), then global 25 % budget, data-aware";
        let mut m = base.clone();
        let ft = train_set.clone();
        let eval_set = test.clone();
        let rest = Selector::all().exclude("conv2.*");
        let report = Compressor::new(&[1, 1, 28, 28])
            .calibration(calib.clone())
            .stage(DecomposeConv::new(
                Selector::path("conv2"),
                ConvMethod::Tucker2,
                ConvRanks::Vbmf,
            ))
            .stage_with_fine_tune(
                LowRank::global(rest, Budget::ParamFraction(KEEP)).data_aware(samples),
                move |m| train(m, &ft, FINE_TUNE_EPOCHS, FINE_TUNE_LR, batch),
            )
            .evaluator(move |m| Ok(evaluate(m, &eval_set, 500)?.accuracy))
            .run(&mut m)?;
        print_row(label, &report, base_acc);
        reports.push((label, report));
    }
    for (label, report) in reports {
        println!("\nReport, {label}:\n\n{}", report.to_markdown());
        for stage in &report.stages {
            println!("- {}: {}", stage.pass, stage.notes.join("; "));
        }
    }
    println!("total time {:.0} s\n", start.elapsed().as_secs_f64());
    Ok(())
}

/// One line of the fine-tuned table.
fn print_row(label: &str, report: &CompressionReport, base_acc: f32) {
    let (pb, pa) = (report.total_before.params, report.total_after.params);
    let (mb, ma) = (report.total_before.macs, report.total_after.macs);
    let acc = 100.0 * report.accuracy_after.unwrap_or(0.0);
    println!(
        "| {label} | {pa} of {pb} ({:.1} %) | {ma} of {mb} ({:.1} %) | {acc:.2} % | {:.2} |",
        100.0 * pa as f64 / pb as f64,
        100.0 * ma as f64 / mb as f64,
        base_acc - acc
    );
}

fn main() -> deepcompress::Result<()> {
    let raw = Mnist::embedded()?;
    let all = raw.train.normalize(MNIST_MEAN, MNIST_STD)?;
    let train_set = all.subset(&(0..7000).collect::<Vec<_>>())?;
    let calib = all.subset(&(7000..8000).collect::<Vec<_>>())?;
    let test = raw.test.normalize(MNIST_MEAN, MNIST_STD)?;
    let only = std::env::args().nth(1).unwrap_or_default();
    let data = (&train_set, &calib, &test);
    if only != "cnn" {
        run("LeNet-300-100", lenet_300_100(0), 32, data)?;
    }
    if only != "mlp" {
        run("LeNet-5", lenet5(0), 128, data)?;
    }
    Ok(())
}
