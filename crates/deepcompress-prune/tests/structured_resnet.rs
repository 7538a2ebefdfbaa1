//! Acceptance, short form: structured pruning of the residual CNN removes at least half of
//! its MACs and, after brief fine-tuning, keeps the accuracy of a briefly trained model.
//! The full-size run (8,000 images, accuracy within 1 point, speed) is
//! `cargo run --release -p deepcompress-benches --bin structured_resnet`.

use deepcompress_core::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::models::resnet_small;
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use deepcompress_prune::structured::{Criterion, StructuredPrune, Target};

const INPUT: [usize; 4] = [1, 1, 28, 28];

fn fit(model: &mut Model, train: &deepcompress_core::data::Dataset, epochs: usize, lr: f32) {
    let cfg = TrainConfig {
        epochs,
        batch_size: 32,
        lr,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 3,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(model, &mut Adam::default(), train, None, |_| {}).unwrap();
}

#[test]
fn resnet_small_half_the_macs_keeps_accuracy() {
    let raw = Mnist::embedded().unwrap();
    let train = raw.train.take(1500).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let test = raw.test.take(1000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut model = resnet_small(0);
    fit(&mut model, &train, 3, 1e-3);
    let base = evaluate(&mut model, &test, 500).unwrap().accuracy;
    eprintln!("baseline accuracy {base}");
    assert!(base > 0.8, "baseline accuracy {base}");
    let before = model.summary(&INPUT).unwrap().total();

    let pass = StructuredPrune::new(
        Selector::kinds(&["Conv2d"]),
        Criterion::L1,
        Target::MacFraction(0.5),
        &INPUT,
    );
    let report = pass.apply(&mut model, &mut PassContext::new(0)).unwrap();
    let after = model.summary(&INPUT).unwrap().total();
    assert!(after.macs * 2 <= before.macs, "MACs {} -> {}", before.macs, after.macs);
    assert!(after.params < before.params);
    assert!(!report.layers.is_empty());

    fit(&mut model, &train, 2, 5e-4);
    let tuned = evaluate(&mut model, &test, 500).unwrap().accuracy;
    eprintln!("accuracy {base} -> {tuned}, MACs {} -> {}", before.macs, after.macs);
    // Short schedule on 1,500 images: allow 2 points (the full run checks 1 point).
    assert!(tuned >= base - 0.02, "accuracy {base} -> {tuned}");
}
