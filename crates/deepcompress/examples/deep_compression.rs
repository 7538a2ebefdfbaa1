//! Deep Compression (Han, Mao and Dally 2015) end to end on the embedded MNIST subset:
//! LeNet-300-100 and LeNet-5 with the paper's per-layer pruning fractions, then LeNet-5
//! with fractions chosen by the sensitivity analysis and allocator for one size budget.
//! For each run it prints the paper's per-layer table after pruning, after weight sharing
//! and after Huffman coding, and the size of the file written.
//!
//! ```text
//! cargo run --release --example deep_compression
//! ```
//!
//! The baselines train on 7,000 of the 8,000 training images; the other 1,000 are the
//! validation set of the sensitivity analysis. Accuracies are on the 2,000 test images.

use deepcompress::Model;
use deepcompress::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::models::{lenet_300_100, lenet5};
use deepcompress::prune::sensitivity::Budget;
use deepcompress::recipes::{DeepCompression, PruneTarget};
use deepcompress::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use std::time::Instant;

/// Fraction of the weight bits (codebook index + relative index per kept weight) the
/// allocator may keep: one number per model instead of one per layer.
const MLP_BUDGET: f64 = 0.065;
const CNN_BUDGET: f64 = 0.05;

fn baseline(
    mut model: Model,
    train: &Dataset,
    test: &Dataset,
    batch: usize,
) -> deepcompress::Result<Model> {
    let cfg = TrainConfig {
        epochs: 20,
        batch_size: batch,
        lr: 1e-3,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), train, None, |_| {})?;
    println!("baseline test accuracy {:.2} %\n", 100.0 * evaluate(&mut model, test, 500)?.accuracy);
    Ok(model)
}

fn compress(
    name: &str,
    recipe: &DeepCompression,
    model: &Model,
    data: (&Dataset, &Dataset, &Dataset),
) -> deepcompress::Result<()> {
    let start = Instant::now();
    let mut m = model.clone();
    let report = recipe.run(&mut m, data.0, data.1, data.2)?;
    println!("### {name}\n\n{}", report.to_markdown());
    let path = std::env::temp_dir().join(format!("{}.dcmp", name.replace([' ', ','], "_")));
    report.container.write(&path).map_err(|e| e.into_core("write"))?;
    let on_disk = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "written to {} ({on_disk} bytes) in {:.0} s\n",
        path.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

fn main() -> deepcompress::Result<()> {
    let raw = Mnist::embedded()?;
    let all = raw.train.normalize(MNIST_MEAN, MNIST_STD)?;
    let train = all.subset(&(0..7000).collect::<Vec<_>>())?;
    let val = all.subset(&(7000..8000).collect::<Vec<_>>())?;
    let test = raw.test.normalize(MNIST_MEAN, MNIST_STD)?;
    let data = (&train, &val, &test);
    // `deep_compression mlp` or `deep_compression cnn` runs one model only.
    let only = std::env::args().nth(1).unwrap_or_default();

    if only != "cnn" {
        println!("## LeNet-300-100\n");
        let mlp = baseline(lenet_300_100(0), &train, &test, 32)?;
        let paper = DeepCompression::paper_lenet_300_100();
        compress("LeNet-300-100, paper fractions", &paper, &mlp, data)?;
        let auto = DeepCompression::new(PruneTarget::Auto(Budget::KeepFraction(MLP_BUDGET)), 32);
        compress("LeNet-300-100, allocated", &auto, &mlp, data)?;
    }
    if only != "mlp" {
        println!("## LeNet-5\n");
        let cnn = baseline(lenet5(0), &train, &test, 128)?;
        compress("LeNet-5, paper fractions", &DeepCompression::paper_lenet5(), &cnn, data)?;
        let auto = DeepCompression::new(PruneTarget::Auto(Budget::KeepFraction(CNN_BUDGET)), 128);
        compress("LeNet-5, allocated", &auto, &cnn, data)?;
    }
    Ok(())
}
