//! Unstructured pruning: exact sparsity, masks through training, sparse inference, bad input.

use deepcompress_core::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::layer::{Conv2d, Linear};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, TrainConfig, Trainer};
use deepcompress_prune::Mask;
use deepcompress_prune::sparse::Sparsify;
use deepcompress_prune::unstructured::{MagnitudePrune, Pattern, Sparsity};
use proptest::prelude::*;

fn zeros(m: &Model, path: &str) -> usize {
    let w = if let Ok(fc) = m.layer_as::<Linear>(path) {
        fc.weight.value().clone()
    } else {
        m.layer_as::<Conv2d>(path).unwrap().weight.value().clone()
    };
    w.iter().filter(|v| **v == 0.0).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn exact_sparsity_per_layer_and_global(s in 0.0f64..0.999, seed in 0u64..1000, global in any::<bool>()) {
        let mut m = deepcompress_core::models::lenet5(seed);
        let sparsity = if global { Sparsity::Global(s) } else { Sparsity::Uniform(s) };
        MagnitudePrune::new(Selector::all(), sparsity).apply(&mut m, &mut PassContext::new(0)).unwrap();
        let layers = [("conv1", 500), ("conv2", 25_000), ("fc1", 400_000), ("fc2", 5_000)];
        if global {
            let total: usize = layers.iter().map(|(_, n)| n).sum();
            let pruned: usize = layers.iter().map(|(p, _)| zeros(&m, p)).sum();
            prop_assert_eq!(pruned, (s * total as f64).round() as usize);
        } else {
            for (p, n) in layers {
                prop_assert_eq!(zeros(&m, p), (s * n as f64).round() as usize, "{}", p);
            }
        }
    }
}

#[test]
fn masks_survive_training_and_sparse_inference_matches() {
    let mnist = Mnist::embedded().unwrap();
    let train = mnist.train.take(512).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let test = mnist.test.take(256).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut m = deepcompress_core::models::lenet_300_100(0);
    MagnitudePrune::new(Selector::all(), Sparsity::per_layer([("fc1", 0.92), ("fc2", 0.91)]))
        .apply(&mut m, &mut PassContext::new(0))
        .unwrap();
    let before = zeros(&m, "fc1");
    assert_eq!(before, (0.92f64 * 235_200.0).round() as usize);
    let cfg = TrainConfig { epochs: 2, batch_size: 64, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut m, &mut Adam::default(), &train, None, |_| {}).unwrap();
    // the mask still holds, and the same weights are zero
    let fc1 = m.layer_as::<Linear>("fc1").unwrap();
    let mask = Mask::of(&fc1.weight).unwrap();
    assert!(fc1.weight.value().iter().zip(mask.keep()).all(|(v, k)| *k || *v == 0.0));
    assert!(zeros(&m, "fc1") >= before);
    let dense_out = m.predict(&test.inputs, 128).unwrap();
    Sparsify::new(Selector::all()).apply(&mut m, &mut PassContext::new(0)).unwrap();
    let sparse_out = m.predict(&test.inputs, 128).unwrap();
    let worst = (&dense_out - &sparse_out).iter().fold(0.0f32, |a, d| a.max(d.abs()));
    assert!(worst < 1e-4, "sparse inference differs by {worst}");
    let s = m.summary(&[1, 784]).unwrap();
    let fc1 = s.rows.iter().find(|l| l.path == "fc1").unwrap();
    assert!(fc1.cost.storage_bits < 235_200 * 32 / 8);
}

#[test]
fn n_m_and_block_patterns() {
    let mut m = deepcompress_core::models::lenet_300_100(1);
    MagnitudePrune::n_m(Selector::path("fc2"), 2, 4)
        .apply(&mut m, &mut PassContext::new(0))
        .unwrap();
    let w = m.layer_as::<Linear>("fc2").unwrap().weight.value().clone();
    for row in w.rows() {
        for g in row.as_slice().unwrap().chunks(4) {
            assert_eq!(g.iter().filter(|v| **v != 0.0).count(), 2);
        }
    }
    MagnitudePrune::new(Selector::path("fc1"), Sparsity::Uniform(0.5))
        .pattern(Pattern::Block { rows: 4, cols: 16 })
        .apply(&mut m, &mut PassContext::new(0))
        .unwrap();
    // 75 x 49 blocks of 64 weights: round(0.5 * 3675) = 1838 blocks pruned
    assert_eq!(zeros(&m, "fc1"), 1838 * 64);
}

#[test]
fn bad_input_leaves_the_model_unchanged() {
    let m0 = deepcompress_core::models::lenet_300_100(0);
    let bad = [
        MagnitudePrune::new(Selector::all(), Sparsity::Uniform(1.0)),
        MagnitudePrune::new(Selector::all(), Sparsity::Uniform(-0.1)),
        MagnitudePrune::new(Selector::all(), Sparsity::Global(f64::NAN)),
        MagnitudePrune::new(Selector::kinds(&["ReLU"]), Sparsity::Uniform(0.5)),
        MagnitudePrune::new(Selector::path("fc1"), Sparsity::per_layer([("fc2", 0.5)])),
        MagnitudePrune::n_m(Selector::all(), 3, 2),
        MagnitudePrune::n_m(Selector::path("fc3"), 2, 3), // 100 inputs: not a multiple of 3
        MagnitudePrune::new(Selector::all(), Sparsity::Uniform(0.5))
            .pattern(Pattern::Block { rows: 7, cols: 7 }),
    ];
    for pass in bad {
        let mut m = m0.clone();
        let err = pass.apply(&mut m, &mut PassContext::new(0)).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert_eq!(m.state_dict(), m0.state_dict(), "{pass:?}");
        assert!(pass.validate(&m0).is_err());
    }
    let mut m = m0.clone();
    m.layer_mut("fc2").unwrap().params_mut()[0].1.value_mut()[[0, 0]] = f32::NAN;
    let err = MagnitudePrune::new(Selector::all(), Sparsity::Uniform(0.5))
        .apply(&mut m, &mut PassContext::new(0))
        .unwrap_err();
    assert!(err.to_string().contains("fc2"), "{err}");
}
