//! GPTQ against round-to-nearest under the same scheme: output error on held-out inputs
//! for trained LeNet-300-100 and LeNet-5 layers and for 768x768 and 3072x768
//! random-plus-structured matrices; exactness of the stored codes; refusals.

#[path = "common/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

use deepcompress_core::data::{Dataset, MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::layer::{CompressedConv2d, CompressedLinear, Conv2d, Layer, Linear, Mode};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::models::{lenet_300_100, lenet5};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::tensor::Tensor;
use deepcompress_core::train::{Adam, TrainConfig, Trainer};
use deepcompress_quant::gptq::{Gptq, GptqConfig, Hessian, gptq_quantize};
use deepcompress_quant::{Granularity, QuantScheme, QuantTensor, QuantizeWeights};
use ndarray::{Array1, Array2, ArrayD, Axis, Ix2, Ix4};
use proptest::prelude::*;
use synthetic::{activations, relative_output_error, structured_weight};

fn dense2(q: &QuantTensor) -> Array2<f32> {
    q.to_dense().into_dimensionality::<Ix2>().unwrap()
}

fn gptq(w: &Array2<f32>, h: &Hessian, scheme: &QuantScheme, cfg: &GptqConfig) -> QuantTensor {
    gptq_quantize(&w.clone().into_dyn(), h.matrix().view(), scheme, cfg).unwrap().tensor
}

/// Relative output errors (RTN, GPTQ) of one weight on held-out activations.
fn compare(
    w: &Array2<f32>,
    calib: &Array2<f32>,
    held_out: &Array2<f32>,
    scheme: &QuantScheme,
    cfg: &GptqConfig,
) -> (f64, f64) {
    let h = Hessian::from_rows(calib.view(), "w").unwrap();
    let rtn = QuantTensor::quantize(&w.clone().into_dyn(), scheme).unwrap();
    let g = gptq(w, &h, scheme, cfg);
    assert_eq!(g.storage_bits(), rtn.storage_bits());
    (
        relative_output_error(w, &dense2(&rtn), held_out),
        relative_output_error(w, &dense2(&g), held_out),
    )
}

#[test]
fn gptq_beats_rtn_on_structured_matrices() {
    let calib = activations(1024, 768, 1, 1);
    let held_out = activations(512, 768, 1, 2);
    for (rows, seed) in [(768, 10), (3072, 11)] {
        let w = structured_weight(rows, 768, seed);
        for bits in [3, 4] {
            for (scheme, cfg) in [
                (QuantScheme::new(bits), GptqConfig::default()),
                (
                    QuantScheme::new(bits)
                        .granularity(Granularity::PerGroup { rows: 1, cols: 128 }),
                    GptqConfig::default().act_order(true),
                ),
            ] {
                let (rtn, ours) = compare(&w, &calib, &held_out, &scheme, &cfg);
                assert!(
                    ours < 0.8 * rtn,
                    "{rows}x768, {bits} bits, {:?}: GPTQ {ours} vs RTN {rtn}",
                    scheme.granularity
                );
            }
        }
    }
}

fn mnist(train: usize, test: usize) -> (Dataset, Dataset) {
    let m = Mnist::embedded().unwrap();
    (
        m.train.take(train).normalize(MNIST_MEAN, MNIST_STD).unwrap(),
        m.test.take(test).normalize(MNIST_MEAN, MNIST_STD).unwrap(),
    )
}

fn trained(mut model: Model, data: &Dataset, epochs: usize) -> Model {
    let cfg = TrainConfig { epochs, batch_size: 64, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), data, None, |_| {}).unwrap();
    model
}

/// `||layer(x) - quantized(x)|| / ||layer(x) - bias||` for a Linear or Conv2d at `path`.
fn layer_error(model: &Model, path: &str, q: QuantTensor, x: &ArrayD<f32>) -> f64 {
    let bias = |b: &Option<deepcompress_core::Param>| {
        b.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>())
    };
    let (mut dense, mut nobias, mut quant): (Box<dyn Layer>, Box<dyn Layer>, Box<dyn Layer>) =
        if let Ok(fc) = model.layer_as::<Linear>(path) {
            let w = fc.weight.value().clone().into_dimensionality::<Ix2>().unwrap();
            (
                Box::new(fc.clone()),
                Box::new(Linear::from_weights(w, None).unwrap()),
                Box::new(CompressedLinear::new(Box::new(q), bias(&fc.bias)).unwrap()),
            )
        } else {
            let c = model.layer_as::<Conv2d>(path).unwrap();
            let w = c.weight.value().clone().into_dimensionality::<Ix4>().unwrap();
            (
                Box::new(c.clone()),
                Box::new(Conv2d::from_weights(c.config, w, None).unwrap()),
                Box::new(CompressedConv2d::new(c.config, Box::new(q), bias(&c.bias)).unwrap()),
            )
        };
    let want = dense.forward(x.clone(), Mode::Eval).unwrap();
    let got = quant.forward(x.clone(), Mode::Eval).unwrap();
    let signal = nobias.forward(x.clone(), Mode::Eval).unwrap();
    let norm = |a: &ArrayD<f32>| a.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
    norm(&(&want - &got)) / norm(&signal)
}

/// Per layer: relative output error of RTN and GPTQ on held-out inputs of the float model.
fn lenet_layers(model: &mut Model, paths: &[&str], calib: &Dataset, test: &Dataset, bits: u8) {
    let seen = model.capture_inputs(paths, &calib.inputs, 250).unwrap();
    let held = model.capture_inputs(paths, &test.inputs, 250).unwrap();
    let scheme = QuantScheme::new(bits);
    for &p in paths {
        let (w, h) = if let Ok(fc) = model.layer_as::<Linear>(p) {
            let x = seen[p].view().into_dimensionality::<Ix2>().unwrap();
            (fc.weight.value().clone(), Hessian::from_rows(x, p).unwrap())
        } else {
            let c = model.layer_as::<Conv2d>(p).unwrap();
            let x = seen[p].view().into_dimensionality::<Ix4>().unwrap();
            (c.weight.value().clone(), Hessian::from_conv_inputs(x, &c.config, p).unwrap())
        };
        let rtn = QuantTensor::quantize(&w, &scheme).unwrap();
        let g = gptq_quantize(&w, h.matrix().view(), &scheme, &GptqConfig::default()).unwrap();
        assert_eq!(g.tensor.shape(), w.shape());
        let e_rtn = layer_error(model, p, rtn, &held[p]);
        let e_gptq = layer_error(model, p, g.tensor, &held[p]);
        assert!(e_gptq < e_rtn, "{p} at {bits} bits: GPTQ {e_gptq} vs RTN {e_rtn}");
    }
}

/// Logit error of a quantized model against the float one.
fn logit_error(float: &mut Model, q: &mut Model, x: &ArrayD<f32>) -> f64 {
    let a = float.predict(x, 250).unwrap();
    let b = q.predict(x, 250).unwrap();
    (&a - &b).iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn gptq_beats_rtn_on_lenet_300_100() {
    let (train, test) = mnist(2000, 500);
    let mut model = trained(lenet_300_100(0), &train, 2);
    let calib = train.take(512);
    for bits in [3, 4] {
        lenet_layers(&mut model, &["fc1", "fc2", "fc3"], &calib, &test, bits);
    }
    // The pass, layer after layer on the inputs of the already quantized layers.
    let scheme = QuantScheme::new(3);
    let mut g = model.clone();
    let report = Gptq::new(Selector::all(), scheme, GptqConfig::default())
        .apply(&mut g, &mut PassContext::new(0).with_calibration(&calib))
        .unwrap();
    assert_eq!(report.layers, vec!["fc1", "fc2", "fc3"]);
    let mut r = model.clone();
    QuantizeWeights::new(Selector::all(), scheme).apply(&mut r, &mut PassContext::new(0)).unwrap();
    assert_eq!(
        g.summary(&[1, 784]).unwrap().total().storage_bits,
        r.summary(&[1, 784]).unwrap().total().storage_bits
    );
    let (e_g, e_r) = (
        logit_error(&mut model, &mut g, &test.inputs),
        logit_error(&mut model, &mut r, &test.inputs),
    );
    assert!(e_g < e_r, "logit error GPTQ {e_g} vs RTN {e_r}");
}

#[test]
fn gptq_beats_rtn_on_lenet5() {
    let (train, test) = mnist(1000, 300);
    let mut model = trained(lenet5(0), &train, 1);
    let calib = train.take(256);
    for bits in [3, 4] {
        lenet_layers(&mut model, &["conv1", "conv2", "fc1", "fc2"], &calib, &test, bits);
    }
    let mut g = model.clone();
    Gptq::new(Selector::all(), QuantScheme::new(3), GptqConfig::default().act_order(true))
        .apply(&mut g, &mut PassContext::new(0).with_calibration(&calib))
        .unwrap();
    assert_eq!(g.layer("conv2").unwrap().encoding(), "int3");
    let mut r = model.clone();
    QuantizeWeights::new(Selector::all(), QuantScheme::new(3))
        .apply(&mut r, &mut PassContext::new(0))
        .unwrap();
    let (e_g, e_r) = (
        logit_error(&mut model, &mut g, &test.inputs),
        logit_error(&mut model, &mut r, &test.inputs),
    );
    assert!(e_g < e_r, "logit error GPTQ {e_g} vs RTN {e_r}");
}

/// With a diagonal `H` (uncorrelated inputs) there is nothing to compensate: GPTQ must
/// store exactly the codes of round-to-nearest, for every granularity, both symmetric and
/// affine grids, and with act-order (distinct diagonal entries, so columns are permuted).
#[test]
fn diagonal_hessian_reproduces_round_to_nearest_bit_for_bit() {
    let w = structured_weight(40, 96, 3);
    let h =
        Array2::from_diag(&ndarray::Array1::from_shape_fn(96, |i| 1.0 + ((i * 37) % 96) as f64));
    for g in [
        Granularity::PerTensor,
        Granularity::PerChannel,
        Granularity::PerGroup { rows: 1, cols: 32 },
        Granularity::PerGroup { rows: 1, cols: 40 },
    ] {
        for scheme in
            [QuantScheme::new(3).granularity(g), QuantScheme::new(4).asymmetric().granularity(g)]
        {
            for act_order in [false, true] {
                let cfg = GptqConfig::default().act_order(act_order).block_size(7);
                let ours = gptq_quantize(&w.clone().into_dyn(), h.view(), &scheme, &cfg).unwrap();
                let rtn = QuantTensor::quantize(&w.clone().into_dyn(), &scheme).unwrap();
                assert_eq!(ours.tensor, rtn, "{scheme:?}, act-order {act_order}");
            }
        }
    }
}

#[test]
fn refusals_are_typed_and_leave_the_model_unchanged() {
    let w = ArrayD::from_shape_fn(vec![4, 6], |ix| ix[0] as f32 - ix[1] as f32);
    let h = Array2::<f64>::eye(6);
    let ok = GptqConfig::default();
    let s4 = QuantScheme::new(4);
    let run = |w: &ArrayD<f32>, h: &Array2<f64>, s: &QuantScheme, c: &GptqConfig| {
        gptq_quantize(w, h.view(), s, c).unwrap_err().to_string()
    };
    assert!(run(&w, &h, &QuantScheme::new(1), &ok).contains("bits"));
    assert!(run(&w, &h, &s4, &ok.percdamp(-0.1)).contains("percdamp"));
    assert!(run(&w, &h, &s4, &ok.block_size(0)).contains("block_size"));
    let grouped = s4.granularity(Granularity::PerGroup { rows: 2, cols: 3 });
    assert!(run(&w, &h, &grouped, &ok).contains("group rows"));
    assert!(run(&w, &Array2::eye(5), &s4, &ok).contains("Hessian"));
    assert!(run(&w, &Array2::zeros((6, 6)), &s4, &ok).contains("calibration"));
    let mut nan = w.clone();
    nan[[1, 2]] = f32::NAN;
    assert!(run(&nan, &h, &s4, &ok).contains("non-finite"));
    let mut bad_h = h.clone();
    bad_h[[0, 1]] = f64::INFINITY;
    assert!(run(&w, &bad_h, &s4, &ok).contains("non-finite"));
    // A Hessian that is not positive semi-definite and no damping.
    let neg = Array2::from_shape_fn((6, 6), |(i, j)| if i == j { 1.0 } else { 0.9 }) * -1.0
        + Array2::<f64>::eye(6) * 1.5;
    assert!(run(&w, &neg, &s4, &ok.percdamp(0.0)).contains("positive definite"));

    // The pass: no calibration data, empty data, NaN activations, bad selection.
    let mut model = lenet_300_100(0);
    let before = format!("{model:?}");
    let pass = Gptq::new(Selector::all(), s4, ok);
    let e = pass.apply(&mut model, &mut PassContext::new(0)).unwrap_err();
    assert!(e.to_string().contains("calibration"), "{e}");
    let empty = Dataset::new(ArrayD::zeros(vec![0, 1, 28, 28]), vec![]).unwrap();
    assert!(pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&empty)).is_err());
    // Non-finite activations: an unselected fc1 with infinite weights feeds fc2.
    let data = Dataset::new(ArrayD::from_elem(vec![8, 1, 28, 28], 0.5_f32), vec![0; 8]).unwrap();
    let mut broken = model.clone();
    if let Ok(slot) = broken.layer_mut("fc1") {
        let fc = slot.as_any_mut().downcast_mut::<Linear>().unwrap();
        fc.weight.value_mut().fill(f32::INFINITY);
    }
    let broken_before = format!("{broken:?}");
    let e = Gptq::new(Selector::path("fc2"), s4, ok)
        .apply(&mut broken, &mut PassContext::new(0).with_calibration(&data))
        .unwrap_err();
    assert!(format!("{e:?}").contains("fc2") && e.to_string().contains("non-finite"), "{e}");
    assert_eq!(format!("{broken:?}"), broken_before);
    let e = Gptq::new(Selector::path("relu*"), s4, ok)
        .apply(&mut model, &mut PassContext::new(0).with_calibration(&data))
        .unwrap_err();
    assert!(e.to_string().contains("selector") || format!("{e:?}").contains("selector"), "{e:?}");
    assert_eq!(format!("{model:?}"), before);
}

#[test]
fn a_vector_is_one_row() {
    let v = ArrayD::from_shape_fn(vec![6], |ix| ix[0] as f32 / 5.0 - 0.5);
    let out = gptq_quantize(
        &v,
        Array2::<f64>::eye(6).view(),
        &QuantScheme::new(4),
        &GptqConfig::default(),
    )
    .unwrap();
    assert_eq!(out.tensor, QuantTensor::quantize(&v, &QuantScheme::new(4)).unwrap());
}

#[test]
fn dead_inputs_get_zero_weights() {
    // Input 2 is never excited: its column is zero after GPTQ and counted.
    let mut x = activations(200, 8, 5, 0);
    x.column_mut(2).fill(0.0);
    let w = structured_weight(5, 8, 6);
    let h = Hessian::from_rows(x.view(), "fc").unwrap();
    let out = gptq_quantize(
        &w.into_dyn(),
        h.matrix().view(),
        &QuantScheme::new(4),
        &GptqConfig::default(),
    )
    .unwrap();
    assert_eq!(out.stats.dead_inputs, 1);
    assert!(dense2(&out.tensor).column(2).iter().all(|&v| v == 0.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The lazy batch size changes only the order of floating-point sums, and GPTQ never
    /// does worse than RTN on the calibration data itself by more than rounding noise
    /// when the inputs are correlated.
    #[test]
    fn block_size_does_not_change_the_result(seed in 0u64..1000, rows in 1usize..12, cols in 2usize..40, bits in 2u8..6, block in 1usize..9) {
        let w = structured_weight(rows, cols, seed);
        let x = activations(3 * cols + 8, cols, seed, 1);
        let h = Hessian::from_rows(x.view(), "p").unwrap();
        let scheme = QuantScheme::new(bits);
        let a = dense2(&gptq(&w, &h, &scheme, &GptqConfig::default().block_size(block)));
        let b = dense2(&gptq(&w, &h, &scheme, &GptqConfig::default()));
        let differ = a.iter().zip(b.iter()).filter(|(p, q)| p != q).count();
        prop_assert!(differ * 20 <= rows * cols + 20, "{differ} of {}", rows * cols);
        // Every value is on the scheme's grid: re-quantizing with the same row scales is exact.
        let q = gptq(&w, &h, &scheme, &GptqConfig::default());
        let d = dense2(&q);
        for ((i, j), &v) in d.indexed_iter() {
            let s = q.scale_at(i, j);
            prop_assert!((v / s - (v / s).round()).abs() < 1e-3);
            prop_assert!(((v / s).abs().round() as i32) < (1 << (bits - 1)));
        }
    }
}

#[test]
fn hessian_from_batches_equals_hessian_from_all() {
    let x = activations(100, 12, 9, 0);
    let all = Hessian::from_rows(x.view(), "fc").unwrap();
    let mut parts = Hessian::new(12);
    for chunk in x.axis_chunks_iter(Axis(0), 33) {
        parts.add_rows(chunk, "fc").unwrap();
    }
    assert_eq!(parts.samples(), 100);
    let d = &parts.matrix() - &all.matrix();
    let scale = all.matrix().iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(d.iter().all(|v| v.abs() < 1e-6 * scale));
}

#[test]
fn same_result_on_one_thread_and_many() {
    let w = structured_weight(70, 64, 12);
    let x = activations(300, 64, 12, 0);
    let h = Hessian::from_rows(x.view(), "fc").unwrap();
    let scheme = QuantScheme::new(3).granularity(Granularity::PerGroup { rows: 1, cols: 16 });
    let run = || gptq(&w, &h, &scheme, &GptqConfig::default().block_size(8));
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(run);
    assert_eq!(one, three);
}
