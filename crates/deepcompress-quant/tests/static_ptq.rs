//! Post-training static quantization: the integer layers against their float simulation,
//! a calibrated LeNet-5, and refusals of bad input.

use deepcompress_core::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Linear, Mode};
use deepcompress_core::model::Selector;
use deepcompress_core::models::lenet5;
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, TrainConfig, Trainer, evaluate};
use deepcompress_quant::{ActQuant, Calibration, QConv2d, QLinear, StaticQuantize};
use ndarray::{Array2, ArrayD, Ix4};
use proptest::prelude::*;

/// A deterministic pseudo-random value in `[-1, 1)`.
fn noise(i: usize, seed: u64) -> f32 {
    let h =
        (i as u64 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Integer arithmetic and its fake-quantized float simulation differ by at most one
    /// output step (bias rounding, fixed-point multiplier, float summation order).
    #[test]
    fn qlinear_matches_the_simulation_within_one_step(
        out in 1usize..24, k in 1usize..300, n in 1usize..9, seed in 0u64..10_000,
        lo in -4.0f32..0.0, hi in 0.1f32..4.0, out_range in 0.5f32..20.0, bias in any::<bool>(),
        reduced in any::<bool>(),
    ) {
        let w = Array2::from_shape_fn((out, k), |(i, j)| noise(i * k + j, seed) * (1.0 + i as f32 / 4.0));
        let b: Vec<f32> = (0..out).map(|i| noise(i, seed + 1)).collect();
        let input = ActQuant::from_range(lo, hi, 8).unwrap();
        let output = ActQuant::from_range(-out_range, out_range, 8).unwrap();
        let mut fc = if reduced {
            QLinear::new_reduced_range(w.view(), bias.then_some(&b[..]), input, output).unwrap()
        } else {
            QLinear::new(w.view(), bias.then_some(&b[..]), input, output).unwrap()
        };
        prop_assert_eq!(fc.encoding(), if reduced { "int8 (w7a8)" } else { "int8 (w8a8)" });
        // Inputs overshoot the calibrated range on purpose: clipping must agree too.
        let x = ArrayD::from_shape_fn(vec![n, k], |i| noise(i[0] * k + i[1], seed + 2) * 1.5 * hi.max(-lo));
        let y = fc.forward(x.clone(), Mode::Eval).unwrap();
        let sim = fc.simulate(&x).unwrap();
        for (a, s) in y.iter().zip(sim.iter()) {
            prop_assert!((a - s).abs() <= output.scale * 1.001, "{a} vs {s}, step {}", output.scale);
        }
    }

    /// The same for convolutions, with padding (zero is exact) and strides.
    #[test]
    fn qconv2d_matches_the_simulation_within_one_step(
        cin in 1usize..4, cout in 1usize..6, kernel in 1usize..4, pad in 0usize..2,
        stride in 1usize..3, hw in 4usize..9, seed in 0u64..10_000, reduced in any::<bool>(),
    ) {
        let cfg = Conv2dConfig::new(cin, cout, kernel).padding(pad).stride(stride);
        let conv = Conv2d::new(cfg, seed).unwrap();
        let w = conv.weight.value().view().into_dimensionality::<Ix4>().unwrap();
        let b: Vec<f32> = (0..cout).map(|i| noise(i, seed) * 0.1).collect();
        let (input, output) =
            (ActQuant::from_range(0.0, 1.0, 8).unwrap(), ActQuant::from_range(-1.5, 1.5, 8).unwrap());
        let q = if reduced {
            QConv2d::new_reduced_range(cfg, w, Some(&b), input, output).unwrap()
        } else {
            QConv2d::new(cfg, w, Some(&b), input, output).unwrap()
        };
        let x = ArrayD::from_shape_fn(vec![2, cin, hw, hw], |i| {
            noise(((i[0] * cin + i[1]) * hw + i[2]) * hw + i[3], seed + 3).abs()
        });
        let y = q.clone().forward(x.clone(), Mode::Eval).unwrap();
        let sim = q.simulate(&x).unwrap();
        prop_assert_eq!(y.shape(), sim.shape());
        for (a, s) in y.iter().zip(sim.iter()) {
            prop_assert!((a - s).abs() <= q.output_quant().scale * 1.001, "{a} vs {s}");
        }
    }
}

#[test]
fn int8_lenet5_keeps_accuracy_with_every_calibration() {
    let mnist = Mnist::embedded().unwrap();
    let train = mnist.train.take(2000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let test = mnist.test.take(1000).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let calib = mnist.train.subset(&(4000..4256).collect::<Vec<_>>()).unwrap();
    let calib = calib.normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut model = lenet5(0);
    let cfg = TrainConfig { epochs: 2, batch_size: 64, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();
    let base = evaluate(&mut model, &test, 500).unwrap().accuracy;
    assert!(base > 0.9, "baseline {base}");
    let f32_bits = model.summary(&[1, 1, 28, 28]).unwrap().total().storage_bits;
    for c in [
        Calibration::MinMax,
        Calibration::MovingAverage { momentum: 0.9 },
        Calibration::Percentile { percent: 99.99 },
        Calibration::Mse,
        Calibration::Kl,
    ] {
        // 7-bit weights with the default (min-max) calibration only.
        let variants: &[bool] = if c == Calibration::MinMax { &[false, true] } else { &[false] };
        for &reduced in variants {
            let mut m = model.clone();
            StaticQuantize::new(Selector::all())
                .calibration(c)
                .samples(256)
                .reduce_range(reduced)
                .apply(&mut m, &mut PassContext::new(0).with_calibration(&calib))
                .unwrap();
            let acc = evaluate(&mut m, &test, 500).unwrap().accuracy;
            let bits = m.summary(&[1, 1, 28, 28]).unwrap().total().storage_bits;
            assert!(base - acc <= 0.01, "{c:?}, 7-bit {reduced}: {base} -> {acc}");
            assert!(bits * 3 < f32_bits, "{c:?}: {bits} of {f32_bits} bits");
            let conv1 = m.layer_as::<QConv2d>("conv1").unwrap();
            assert!(m.layer_as::<QLinear>("fc2").is_ok());
            assert_eq!(conv1.encoding(), if reduced { "int8 (w7a8)" } else { "int8 (w8a8)" });
        }
    }
}

#[test]
fn bad_input_is_refused_and_the_model_is_unchanged() {
    let mut model = lenet5(0);
    let before = format!("{model:?}");
    let x = ArrayD::from_elem(vec![4, 1, 28, 28], 0.5_f32);
    let calib = Dataset::new(x.clone(), vec![0; 4]).unwrap();
    let empty = Dataset::new(ArrayD::zeros(vec![0, 1, 28, 28]), vec![]).unwrap();
    let pass = StaticQuantize::new(Selector::all());
    // No calibration data, empty calibration data, no matching layer, bad parameters.
    assert!(pass.apply(&mut model, &mut PassContext::new(0)).is_err());
    let e = pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&empty)).unwrap_err();
    assert!(e.to_string().contains("calibration"), "{e}");
    let none = StaticQuantize::new(Selector::path("pool*"));
    assert!(none.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).is_err());
    let bad = StaticQuantize::new(Selector::all())
        .calibration(Calibration::Percentile { percent: 101.0 });
    assert!(bad.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).is_err());
    assert!(StaticQuantize::new(Selector::all()).samples(0).validate(&model).is_err());
    assert_eq!(format!("{model:?}"), before);
    // NaN calibration data names the layer that saw it.
    let nan = Dataset::new(ArrayD::from_elem(vec![2, 1, 28, 28], f32::NAN), vec![0; 2]);
    if let Ok(nan) = nan {
        let e =
            pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&nan)).unwrap_err();
        assert!(e.to_string().contains("non-finite"), "{e}");
        assert_eq!(format!("{model:?}"), before);
    }
    // NaN weights name the layer.
    let fc = model.layer_mut("fc1").unwrap().as_any_mut().downcast_mut::<Linear>().unwrap();
    fc.weight.value_mut()[[0, 0]] = f32::NAN;
    let e = pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).unwrap_err();
    assert!(e.to_string().contains("fc1"), "{e}");
    assert!(model.layer_as::<Conv2d>("conv1").is_ok());
    // NaN input to an integer layer, and a wrong shape.
    let mut q = QLinear::new(
        Array2::<f32>::ones((2, 3)).view(),
        None,
        ActQuant::from_range(0.0, 1.0, 8).unwrap(),
        ActQuant::from_range(0.0, 3.0, 8).unwrap(),
    )
    .unwrap();
    assert!(q.forward(ArrayD::from_elem(vec![1, 3], f32::NAN), Mode::Eval).is_err());
    assert!(q.forward(ArrayD::zeros(vec![1, 4]), Mode::Eval).is_err());
    assert!(q.backward(ArrayD::zeros(vec![1, 2]), true).is_err());
}
