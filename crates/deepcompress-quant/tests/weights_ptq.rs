//! Weight-only post-training quantization of a trained LeNet-300-100: accuracy and size.

use deepcompress_core::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::model::Selector;
use deepcompress_core::models::lenet_300_100;
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, TrainConfig, Trainer, evaluate};
use deepcompress_quant::{Granularity, QuantScheme, QuantizeWeights};

#[test]
fn eight_and_four_bit_weights_keep_accuracy_and_shrink_the_model() {
    let mnist = Mnist::embedded().unwrap();
    let train = mnist.train.take(2000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let test = mnist.test.take(1000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut model = lenet_300_100(0);
    let cfg = TrainConfig { epochs: 3, batch_size: 64, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();
    let base = evaluate(&mut model, &test, 500).unwrap().accuracy;
    let f32_bits = model.summary(&[1, 784]).unwrap().total().storage_bits;
    for (scheme, max_drop, max_bits) in [
        (QuantScheme::new(8), 0.005, f32_bits / 3),
        (
            QuantScheme::new(4).granularity(Granularity::PerGroup { rows: 1, cols: 64 }),
            0.02,
            f32_bits / 6,
        ),
    ] {
        let mut m = model.clone();
        QuantizeWeights::new(Selector::all(), scheme)
            .apply(&mut m, &mut PassContext::new(0))
            .unwrap();
        let acc = evaluate(&mut m, &test, 500).unwrap().accuracy;
        let bits = m.summary(&[1, 784]).unwrap().total().storage_bits;
        assert!(base - acc <= max_drop, "{} bits: {base} -> {acc}", scheme.bits);
        assert!(bits <= max_bits, "{} bits: {bits} of {f32_bits}", scheme.bits);
    }
}
