//! Trains LeNet-300-100 and LeNet-5 on the embedded MNIST split with fixed seeds and
//! prints each model's summary, test accuracy and training time.
//!
//! ```text
//! cargo run --release --example train_mnist
//! ```

use deepcompress::Model;
use deepcompress::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::models::{lenet_300_100, lenet5};
use deepcompress::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use std::time::Instant;

fn run(name: &str, mut model: Model, mnist: &Mnist, cfg: TrainConfig) -> deepcompress::Result<()> {
    println!("## {name}\n");
    println!("{}\n", model.summary(&[1, 1, 28, 28])?);
    let start = Instant::now();
    let trainer = Trainer::new(cfg);
    trainer.fit(&mut model, &mut Adam::default(), &mnist.train, None, |e| {
        println!(
            "epoch {:>2}  lr {:.2e}  loss {:.4}  ({:.2} s)",
            e.epoch + 1,
            e.lr,
            e.train_loss,
            e.seconds
        )
    })?;
    let secs = start.elapsed().as_secs_f64();
    let test = evaluate(&mut model, &mnist.test, 500)?;
    println!(
        "\n{name}: test accuracy {:.2} % on {} images, trained in {secs:.1} s\n",
        100.0 * test.accuracy,
        mnist.test.len()
    );
    Ok(())
}

fn main() -> deepcompress::Result<()> {
    let raw = Mnist::embedded()?;
    // Inputs standardised with the usual MNIST mean and standard deviation.
    let mnist = Mnist {
        train: raw.train.normalize(MNIST_MEAN, MNIST_STD)?,
        test: raw.test.normalize(MNIST_MEAN, MNIST_STD)?,
    };
    println!("MNIST subset: {} train / {} test images\n", mnist.train.len(), mnist.test.len());
    let mlp_cfg = TrainConfig {
        epochs: 20,
        batch_size: 32,
        lr: 1e-3,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    run("LeNet-300-100", lenet_300_100(0), &mnist, mlp_cfg)?;
    let cnn_cfg = TrainConfig {
        epochs: 20,
        batch_size: 128,
        lr: 1e-3,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 1,
        ..TrainConfig::default()
    };
    run("LeNet-5", lenet5(0), &mnist, cnn_cfg)?;
    Ok(())
}
