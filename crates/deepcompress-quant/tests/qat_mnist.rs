//! Training through the constraints works: LeNet-300-100 on a subset of the embedded
//! MNIST, fine-tuned from a float model with 4-bit QAT (LSQ), ternary (TWN) and binary
//! (BinaryConnect with XNOR scaling) weights, then converted to stored low-bit layers.

use deepcompress_core::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::models::lenet_300_100;
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, TrainConfig, Trainer, evaluate};
use deepcompress_quant::{
    ActQat, BinaryMethod, BinaryScale, ConvertBinary, ConvertQat, PrepareBinary, PrepareQat,
    QuantScheme, QuantizeWeights, WeightQat,
};

fn data() -> (Dataset, Dataset) {
    let mnist = Mnist::embedded().unwrap();
    let train = mnist.train.take(2000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let test = mnist.test.take(1000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    (train, test)
}

fn fit(model: &mut Model, train: &Dataset, epochs: usize, lr: f32) {
    let cfg = TrainConfig { epochs, batch_size: 64, lr, ..TrainConfig::default() };
    Trainer::new(cfg).fit(model, &mut Adam::default(), train, None, |_| {}).unwrap();
}

fn accuracy(model: &mut Model, test: &Dataset) -> f32 {
    evaluate(model, test, 500).unwrap().accuracy
}

fn bits(model: &Model) -> u64 {
    model.summary(&[1, 784]).unwrap().total().storage_bits
}

/// Converting keeps the trained function: stored layers compute what training simulated.
fn convert_exactly(model: &mut Model, pass: &dyn Pass, test: &Dataset) {
    let before = model.predict(&test.inputs, 500).unwrap();
    pass.apply(model, &mut PassContext::new(0)).unwrap();
    let after = model.predict(&test.inputs, 500).unwrap();
    let worst = (&before - &after).iter().fold(0.0f32, |a, d| a.max(d.abs()));
    assert!(worst < 1e-3, "{pass:?}: stored model differs by {worst}");
}

#[test]
fn low_bit_training_through_the_constraints() {
    let (train, test) = data();
    let mut float = lenet_300_100(0);
    fit(&mut float, &train, 3, 1e-3);
    let base = accuracy(&mut float, &test);
    let f32_bits = bits(&float);

    // 4-bit: round-to-nearest PTQ vs LSQ fine-tuning (with 8-bit LSQ activations).
    let mut ptq = float.clone();
    QuantizeWeights::new(Selector::all(), QuantScheme::new(4))
        .apply(&mut ptq, &mut PassContext::new(0))
        .unwrap();
    let ptq_acc = accuracy(&mut ptq, &test);
    let mut qat = float.clone();
    PrepareQat::new(Selector::all(), WeightQat::Lsq { bits: 4, per_channel: true })
        .activations(ActQat::Lsq { bits: 8 })
        .apply(&mut qat, &mut PassContext::new(0))
        .unwrap();
    fit(&mut qat, &train, 2, 2e-4);
    convert_exactly(&mut qat, &ConvertQat::new(Selector::all()), &test);
    let qat_acc = accuracy(&mut qat, &test);
    assert_eq!(qat.layer("fc1").unwrap().encoding(), "int4");
    assert_eq!(bits(&qat), bits(&ptq) + 2 * 32, "same storage as PTQ plus two activation steps");
    eprintln!("float {base:.4}, 4-bit PTQ {ptq_acc:.4}, 4-bit LSQ QAT {qat_acc:.4}");
    assert!(qat_acc >= ptq_acc - 0.005, "QAT {qat_acc} vs PTQ {ptq_acc}");
    assert!(qat_acc >= base - 0.02, "QAT {qat_acc} vs float {base}");

    // Ternary (TWN) and binary (BinaryConnect + XNOR scaling) weights.
    for (method, min_acc, max_bits) in [
        (BinaryMethod::Ternary { factor: 0.7, per_channel: false }, base - 0.03, f32_bits / 12),
        (BinaryMethod::BinaryConnect(BinaryScale::PerChannel), base - 0.06, f32_bits / 20),
    ] {
        let mut m = float.clone();
        PrepareBinary::new(Selector::all(), method)
            .apply(&mut m, &mut PassContext::new(0))
            .unwrap();
        let untrained = accuracy(&mut m, &test);
        fit(&mut m, &train, 3, 5e-4);
        convert_exactly(&mut m, &ConvertBinary::new(Selector::all()), &test);
        let acc = accuracy(&mut m, &test);
        eprintln!(
            "{method:?}: before fine-tuning {untrained:.4}, after {acc:.4}, {} bits",
            bits(&m)
        );
        assert!(acc >= min_acc && acc > 0.8, "{method:?}: {acc} (float {base})");
        assert!(bits(&m) <= max_bits, "{method:?}: {} of {f32_bits} bits", bits(&m));
    }
}

#[test]
fn fake_quant_and_pact_train() {
    let (train, test) = data();
    let mut m = lenet_300_100(1);
    PrepareQat::new(Selector::all(), WeightQat::FakeQuant(QuantScheme::new(4)))
        .activations(ActQat::Pact { bits: 4, alpha: 10.0, l2: 1e-3 })
        .apply(&mut m, &mut PassContext::new(0))
        .unwrap();
    fit(&mut m, &train, 3, 1e-3);
    let alpha = m.state_dict().get_f32("relu1.alpha").unwrap()[[0]];
    assert!(alpha < 10.0, "the clipping level should shrink from 10, got {alpha}");
    convert_exactly(&mut m, &ConvertQat::new(Selector::all()), &test);
    let acc = accuracy(&mut m, &test);
    eprintln!("4-bit fake-quant weights, 4-bit PACT activations, from scratch: {acc:.4}");
    assert!(acc > 0.85, "{acc}");
}
