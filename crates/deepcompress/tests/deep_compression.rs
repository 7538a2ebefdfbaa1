//! The Deep Compression recipe end to end on a small subset (the full run is the
//! `deep_compression` example).

use deepcompress::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::prune::coding::{Container, decode_model};
use deepcompress::prune::sensitivity::Budget;
use deepcompress::prune::unstructured::Sparsity;
use deepcompress::recipes::{DeepCompression, PruneTarget};
use deepcompress::train::{Adam, TrainConfig, Trainer};

fn small_recipe(target: PruneTarget) -> DeepCompression {
    let mut r = DeepCompression::new(target, 64);
    r.rounds = 2;
    r.prune_fine_tune.epochs = 1;
    r.share_fine_tune.epochs = 1;
    r
}

#[test]
fn recipe_writes_a_file_that_loads_back_with_the_reported_accuracy() {
    let raw = Mnist::embedded().unwrap();
    let all = raw.train.take(1500).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let train = all.subset(&(0..1200).collect::<Vec<_>>()).unwrap();
    let val = all.subset(&(1200..1500).collect::<Vec<_>>()).unwrap();
    let test = raw.test.take(500).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut model = deepcompress::models::lenet_300_100(0);
    let cfg = TrainConfig { epochs: 3, batch_size: 64, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();
    let dense = model.clone();

    for target in [
        PruneTarget::Fixed(Sparsity::per_layer([("fc1", 0.92), ("fc2", 0.91), ("fc3", 0.74)])),
        PruneTarget::Auto(Budget::KeepFraction(0.07)),
    ] {
        let mut m = dense.clone();
        let report = small_recipe(target).run(&mut m, &train, &val, &test).unwrap();
        assert_eq!(report.stages.len(), 3);
        assert_eq!(report.dense_bytes, 1_066_440);
        // the file is what the report says, and much smaller than the f32 model
        let bytes = report.container.to_bytes();
        assert_eq!(bytes.len() as u64, report.file_bytes);
        assert!(report.compression() > 25.0, "{}", report.to_markdown());
        // the returned model is the decoded file: loading the bytes again gives the same
        // accuracy and outputs
        let mut loaded = decode_model(&Container::from_bytes(&bytes).unwrap(), &dense).unwrap();
        let a = deepcompress::train::evaluate(&mut loaded, &test, 500).unwrap().accuracy;
        assert_eq!(a, report.stages[2].accuracy);
        let (ya, yb) =
            (m.predict(&test.inputs, 500).unwrap(), loaded.predict(&test.inputs, 500).unwrap());
        assert!((&ya - &yb).iter().all(|d| d.abs() < 1e-5));
        // sharing stores fewer bits per weight than pruning alone, Huffman fewer still
        let total = |i: usize| report.stages[i].total.bytes;
        assert!(total(1) < total(0) && total(2) <= total(1));
        // two one-epoch rounds on 1,200 images cannot recover the full accuracy (the
        // example's schedule does); the compressed model must still be a working one
        assert!(report.stages[2].accuracy > 0.75, "{}", report.to_markdown());
        if let Some(alloc) = &report.allocation {
            assert!(alloc.kept_fraction < 0.2);
            assert!(report.to_markdown().contains("Sensitivity"));
        }
    }
}

#[test]
fn a_bad_target_leaves_the_model_unchanged() {
    let raw = Mnist::embedded().unwrap();
    let data = raw.test.take(64).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut m = deepcompress::models::lenet_300_100(0);
    let before = m.state_dict();
    for target in [
        PruneTarget::Fixed(Sparsity::Uniform(1.5)),
        PruneTarget::Fixed(Sparsity::per_layer([("fc9", 0.5)])),
        PruneTarget::Auto(Budget::KeepFraction(0.0)),
    ] {
        assert!(small_recipe(target).run(&mut m, &data, &data, &data).is_err());
        assert_eq!(m.state_dict(), before);
    }
}
