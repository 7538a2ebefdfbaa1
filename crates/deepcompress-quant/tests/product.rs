//! Product quantization (Gong et al. 2014): exact size, error falling with k, refusals.

use deepcompress_core::layer::{CompressedLinear, Linear};
use deepcompress_core::model::Selector;
use deepcompress_core::models::{lenet_300_100, lenet5};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::tensor::Tensor;
use deepcompress_quant::{ProductConfig, ProductQuantize, ProductTensor};
use ndarray::{Array2, Ix2};
use proptest::prelude::*;

fn weight(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Array2::from_shape_simple_fn((rows, cols), || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
    })
}

fn sq_error(pq: &ProductTensor, w: &Array2<f32>) -> f64 {
    let d = pq.to_dense().into_dimensionality::<Ix2>().unwrap();
    (&d - w).iter().map(|&v| f64::from(v).powi(2)).sum()
}

#[test]
fn storage_is_exact() {
    let w = weight(300, 784, 1);
    for (d, k, bits) in [(4, 256, 8), (4, 16, 4), (8, 5, 3), (2, 2, 1), (16, 100, 7)] {
        let pq =
            ProductTensor::quantize(w.view(), &ProductConfig::new(d, k).iterations(5), 0).unwrap();
        let codes = 300 * (784 / d);
        let want = (codes * bits).div_ceil(8) as u64 * 8 + (784 / d * k * d * 32) as u64;
        assert_eq!(pq.code_bits() as usize, bits);
        assert_eq!(pq.storage_bits(), want, "d {d} k {k}");
    }
    // Fewer rows than k: every sub-vector becomes a centroid, exactly.
    let small = weight(10, 100, 2);
    let pq = ProductTensor::quantize(small.view(), &ProductConfig::new(4, 256), 0).unwrap();
    assert_eq!((pq.centroids(), pq.code_bits()), (10, 4));
    assert_eq!(pq.storage_bits(), (10 * 25 * 4_u64).div_ceil(8) * 8 + 25 * 10 * 4 * 32);
    assert_eq!(sq_error(&pq, &small), 0.0);
}

#[test]
fn error_decreases_as_k_grows() {
    let w = weight(300, 100, 3);
    let errs: Vec<f64> = [2, 4, 16, 64, 256]
        .iter()
        .map(|&k| {
            sq_error(&ProductTensor::quantize(w.view(), &ProductConfig::new(4, k), 7).unwrap(), &w)
        })
        .collect();
    assert!(errs.windows(2).all(|p| p[1] < p[0]), "{errs:?}");
}

#[test]
fn pass_compresses_lenet_and_matches_the_dense_decode() {
    let mut model = lenet_300_100(0);
    let x = ndarray::ArrayD::from_shape_fn(vec![5, 1, 28, 28], |ix| {
        ((ix[0] + ix[2] * ix[3]) % 7) as f32 / 7.0
    });
    let report = ProductQuantize::new(Selector::all(), ProductConfig::new(4, 32))
        .apply(&mut model, &mut PassContext::new(3))
        .unwrap();
    assert_eq!(report.layers, vec!["fc1", "fc2", "fc3"]);
    let fc1 = model.layer_as::<CompressedLinear>("fc1").unwrap();
    let w = fc1.weight().to_dense().into_dimensionality::<Ix2>().unwrap();
    let mut dense = Linear::from_weights(w, fc1.bias().cloned()).unwrap();
    let h = model.capture_inputs(&["fc1"], &x, 5).unwrap()["fc1"].clone();
    let mut pq = model.layer("fc1").unwrap().clone_box();
    let a = pq.forward(h.clone(), deepcompress_core::Mode::Eval).unwrap();
    let b =
        deepcompress_core::Layer::forward(&mut dense, h, deepcompress_core::Mode::Eval).unwrap();
    assert!((&a - &b).iter().all(|d| d.abs() < 1e-4));
    // Same seed, same bits.
    let mut again = lenet_300_100(0);
    ProductQuantize::new(Selector::all(), ProductConfig::new(4, 32))
        .apply(&mut again, &mut PassContext::new(3))
        .unwrap();
    let t = |m: &deepcompress_core::Model| {
        m.layer_as::<CompressedLinear>("fc2")
            .unwrap()
            .weight()
            .as_any()
            .downcast_ref::<ProductTensor>()
            .unwrap()
            .clone()
    };
    assert_eq!(t(&model), t(&again));
}

#[test]
fn bad_parameters_are_typed_errors_and_leave_the_model_unchanged() {
    let mut model = lenet5(0);
    let before = format!("{model:?}");
    for (cfg, what) in [
        (ProductConfig::new(3, 16), "must divide"),
        (ProductConfig::new(4, 1), "centroids k"),
        (ProductConfig::new(4, 257), "centroids k"),
        (ProductConfig::new(0, 16), "sub-vector dimension"),
    ] {
        let e = ProductQuantize::new(Selector::all(), cfg)
            .apply(&mut model, &mut PassContext::new(0))
            .unwrap_err();
        assert!(format!("{e:?}").contains(what), "{e:?}");
        assert_eq!(format!("{model:?}"), before);
    }
    // The error names the layer whose input dimension d does not divide.
    let e = ProductQuantize::new(Selector::path("fc*"), ProductConfig::new(3, 16))
        .apply(&mut model, &mut PassContext::new(0))
        .unwrap_err();
    assert!(format!("{e:?}").contains("fc1"), "{e:?}");
    let e = ProductQuantize::new(Selector::path("conv*"), ProductConfig::new(5, 16))
        .apply(&mut model, &mut PassContext::new(0))
        .unwrap_err();
    assert!(format!("{e:?}").contains("no Linear"), "{e:?}");
    assert_eq!(format!("{model:?}"), before);
    let mut nan = weight(4, 8, 0);
    nan[[1, 1]] = f32::NAN;
    assert!(ProductTensor::quantize(nan.view(), &ProductConfig::new(4, 2), 0).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Storage formula, decode/matmul agreement and error no larger than the centroid
    /// of everything (k-means never does worse than its own seeding's best).
    #[test]
    fn size_and_kernel_invariants(rows in 1usize..40, spaces in 1usize..6, d in 1usize..5, k in 2usize..40, seed in 0u64..100) {
        let w = weight(rows, spaces * d, seed);
        let pq = ProductTensor::quantize(w.view(), &ProductConfig::new(d, k), seed).unwrap();
        let kk = k.min(rows);
        let bits = (usize::BITS - (kk.max(2) - 1).leading_zeros()) as usize;
        prop_assert_eq!(pq.storage_bits(), ((rows * spaces * bits).div_ceil(8) * 8 + spaces * kk * d * 32) as u64);
        let x = weight(spaces * d, 3, seed + 1);
        let y = pq.matmul(x.view()).unwrap();
        let dense = pq.to_dense().into_dimensionality::<Ix2>().unwrap().dot(&x);
        prop_assert!((&y - &dense).iter().all(|v| v.abs() < 1e-4));
        if kk == rows {
            prop_assert!(sq_error(&pq, &w) < 1e-12);
        }
    }
}

#[test]
fn same_codebooks_on_one_thread_and_many() {
    let w = weight(120, 64, 4);
    let run = || ProductTensor::quantize(w.view(), &ProductConfig::new(4, 16), 9).unwrap();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap().install(run);
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap().install(run);
    assert_eq!(one, three);
}
