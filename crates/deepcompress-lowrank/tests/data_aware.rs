//! Data-aware (whitened) factorisation against plain SVD on real MNIST activations.

use deepcompress_core::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::layer::{Layer, Linear, Mode};
use deepcompress_core::models::lenet_300_100;
use deepcompress_core::train::{Adam, TrainConfig, Trainer};
use deepcompress_lowrank::factor::factor_linear;
use deepcompress_lowrank::whiten::{InputGram, Whitening};
use ndarray::{ArrayD, Axis, Ix2};

fn output_error(fc: &Linear, pair: &mut [Box<dyn Layer>], x: &ArrayD<f32>) -> f64 {
    let mut dense = fc.clone();
    let want = dense.forward(x.clone(), Mode::Eval).unwrap();
    let mut got = x.clone();
    for l in pair.iter_mut() {
        got = l.forward(got, Mode::Eval).unwrap();
    }
    (&want - &got).iter().map(|&d| (d as f64).powi(2)).sum::<f64>().sqrt()
}

/// At equal rank, whitened factors give a smaller output error on *held-out* inputs.
#[test]
fn data_aware_beats_plain_svd_on_held_out_activations() {
    let mnist = Mnist::embedded().unwrap();
    let train = mnist.train.take(2000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let test = mnist.test.take(600).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut model = lenet_300_100(0);
    let cfg = TrainConfig { epochs: 2, batch_size: 64, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();

    let calib = train.inputs.slice_axis(Axis(0), (0..1000).into()).to_owned();
    let held_out = test.inputs.to_owned();
    let seen = model.capture_inputs(&["fc1", "fc2"], &calib, 250).unwrap();
    let seen_test = model.capture_inputs(&["fc1", "fc2"], &held_out, 300).unwrap();
    for (path, rank) in [("fc1", 16), ("fc1", 48), ("fc2", 12)] {
        let fc = model.layer_as::<Linear>(path).unwrap().clone();
        let x = seen[path].view().into_dimensionality::<Ix2>().unwrap();
        let wh = Whitening::new(&InputGram::from_rows(x, path).unwrap(), 0.01, path).unwrap();
        let mut plain = factor_linear(path, &fc, rank, None).unwrap();
        let mut aware = factor_linear(path, &fc, rank, Some(&wh)).unwrap();
        let e_plain = output_error(&fc, &mut plain.layers, &seen_test[path]);
        let e_aware = output_error(&fc, &mut aware.layers, &seen_test[path]);
        assert!(e_aware < e_plain, "{path} rank {rank}: data-aware {e_aware} vs plain {e_plain}");
    }
}
