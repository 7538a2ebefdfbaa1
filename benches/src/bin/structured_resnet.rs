//! Structured pruning of the residual CNN (issue acceptance run): trains `resnet_small` on
//! the 8,000 embedded MNIST training images, removes 50 % of its MACs with
//! `StructuredPrune`, fine-tunes, and prints accuracy, MACs, parameters and eval forward
//! time (batch 64) before and after.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin structured_resnet -- [l1|l2|fpgm|bn] [epochs] [fine-tune epochs] [max fraction]
//! ```
//!
//! Zero epochs skip that training (a quick look at the plan and the speed).
//!
//! `bn` trains with the network-slimming penalty (lambda 1e-4) and ranks channels by |γ|.

use deepcompress::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::layer::Mode;
use deepcompress::models::resnet_small;
use deepcompress::pass::{Pass, PassContext};
use deepcompress::train::{Adam, LrSchedule, Optimizer, TrainConfig, Trainer, evaluate};
use deepcompress::{Model, Selector};
use deepcompress_prune::structured::{Criterion, Slimming, StructuredPrune, Target};
use std::time::Instant;

const INPUT: [usize; 4] = [1, 1, 28, 28];

fn train(
    model: &mut Model,
    opt: &mut dyn Optimizer,
    mnist: &Mnist,
    epochs: usize,
    lr: f32,
) -> deepcompress::Result<()> {
    if epochs == 0 {
        return Ok(());
    }
    let cfg = TrainConfig {
        epochs,
        batch_size: 128,
        lr,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(model, opt, &mnist.train, None, |e| {
        println!(
            "  epoch {:>2}  lr {:.2e}  loss {:.4}  ({:.1} s)",
            e.epoch + 1,
            e.lr,
            e.train_loss,
            e.seconds
        )
    })?;
    Ok(())
}

/// Median wall time of `reps` eval forwards of a batch of 64 test images.
fn forward_ms(model: &mut Model, mnist: &Mnist, reps: usize) -> deepcompress::Result<f64> {
    let idx: Vec<usize> = (0..64).collect();
    let (x, _) = mnist.test.batch(&idx);
    model.forward(x.clone(), Mode::Eval)?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps {
        let s = Instant::now();
        model.forward(x.clone(), Mode::Eval)?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    t.sort_by(f64::total_cmp);
    Ok(t[reps / 2])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let crit = match args.get(1).map(String::as_str).unwrap_or("l1") {
        "l1" => Criterion::L1,
        "l2" => Criterion::L2,
        "fpgm" => Criterion::Fpgm,
        "bn" => Criterion::BnScale,
        other => return Err(format!("unknown criterion `{other}` (l1, l2, fpgm, bn)").into()),
    };
    let epochs: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let ft_epochs: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(4);
    let max_fraction: f64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(0.5);
    let raw = Mnist::embedded()?;
    let mnist = Mnist {
        train: raw.train.normalize(MNIST_MEAN, MNIST_STD)?,
        test: raw.test.normalize(MNIST_MEAN, MNIST_STD)?,
    };
    println!(
        "resnet_small, {} train / {} test images, criterion {}, {epochs} epochs + {ft_epochs} fine-tuning",
        mnist.train.len(),
        mnist.test.len(),
        crit.name()
    );
    let mut model = resnet_small(0);
    let start = Instant::now();
    if crit == Criterion::BnScale {
        train(&mut model, &mut Slimming::new(Adam::default(), 1e-4)?, &mnist, epochs, 1e-3)?;
    } else {
        train(&mut model, &mut Adam::default(), &mnist, epochs, 1e-3)?;
    }
    let base = evaluate(&mut model, &mnist.test, 500)?.accuracy;
    let before = model.summary(&INPUT)?.total();
    println!(
        "trained in {:.1} s: test accuracy {:.2} %",
        start.elapsed().as_secs_f64(),
        100.0 * base
    );

    let mut pruned = model.clone();
    let pass =
        StructuredPrune::new(Selector::kinds(&["Conv2d"]), crit, Target::MacFraction(0.5), &INPUT)
            .max_fraction(max_fraction);
    let report = pass.apply(&mut pruned, &mut PassContext::new(0))?;
    for n in &report.notes {
        println!("  {n}");
    }
    let after = pruned.summary(&INPUT)?.total();
    let cut = evaluate(&mut pruned, &mnist.test, 500)?.accuracy;
    println!("after pruning, before fine-tuning: test accuracy {:.2} %", 100.0 * cut);
    train(&mut pruned, &mut Adam::default(), &mnist, ft_epochs, 5e-4)?;
    let tuned = evaluate(&mut pruned, &mnist.test, 500)?.accuracy;

    let t_dense = forward_ms(&mut model, &mnist, 41)?;
    let t_pruned = forward_ms(&mut pruned, &mnist, 41)?;
    println!("\n| | dense | pruned | ratio |\n|---|---|---|---|");
    println!(
        "| MACs (1 image) | {} | {} | {:.1} % removed |",
        before.macs,
        after.macs,
        100.0 * (1.0 - after.macs as f64 / before.macs as f64)
    );
    println!(
        "| parameters | {} | {} | {:.1} % removed |",
        before.params,
        after.params,
        100.0 * (1.0 - after.params as f64 / before.params as f64)
    );
    println!(
        "| test accuracy | {:.2} % | {:.2} % | {:+.2} points |",
        100.0 * base,
        100.0 * tuned,
        100.0 * (tuned - base)
    );
    println!(
        "| eval forward, batch 64 (median of 41) | {t_dense:.2} ms | {t_pruned:.2} ms | {:.2}x |",
        t_dense / t_pruned
    );
    Ok(())
}
