//! The convolution decompositions as layers: each factored chain computes the convolution
//! by its reconstructed kernel (with stride, padding and dilation), full ranks are exact,
//! and bad layers or parameters are typed errors naming the layer.

use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Mode};
use deepcompress_lowrank::LowRankError;
use deepcompress_lowrank::conv::{
    ConvFactorization, CpConfig, Tucker2Config, cp, cp_conv, separable, separable_conv, tucker2,
    tucker2_conv,
};
use ndarray::{Array1, Array4, ArrayD};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn uniform(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    ArrayD::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0))
}

/// A convolution with random weight and bias and the given geometry.
fn conv(
    (n, c): (usize, usize),
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    seed: u64,
) -> Conv2d {
    let config = Conv2dConfig {
        in_channels: c,
        out_channels: n,
        kernel,
        stride,
        padding,
        dilation,
        groups: 1,
        bias: true,
    };
    let w = uniform(&[n, c, kernel.0, kernel.1], seed).into_dimensionality().unwrap();
    let b = uniform(&[n], seed + 1).into_dimensionality::<ndarray::Ix1>().unwrap();
    Conv2d::from_weights(config, w, Some(b)).unwrap()
}

/// The geometries every equivalence is checked under: plain, stride 2 with padding 1, and
/// a rectangular kernel with different stride, padding and dilation per axis.
fn geometries() -> Vec<Conv2d> {
    vec![
        conv((6, 5), (3, 3), (1, 1), (0, 0), (1, 1), 1),
        conv((6, 5), (3, 3), (2, 2), (1, 1), (1, 1), 2),
        conv((7, 4), (3, 5), (2, 1), (1, 2), (1, 2), 3),
    ]
}

fn forward_chain(f: &ConvFactorization, x: &ArrayD<f32>) -> ArrayD<f32> {
    let mut y = x.clone();
    for layer in f.layers.clone().iter_mut() {
        y = layer.forward(y, Mode::Eval).unwrap();
    }
    y
}

/// The original layer's geometry and bias with another kernel.
fn with_kernel(original: &Conv2d, kernel: Array4<f32>) -> Conv2d {
    let bias = original.bias.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>());
    Conv2d::from_weights(original.config, kernel, bias).unwrap()
}

fn rel_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    let d: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let n: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (d / n).sqrt()
}

fn kernel_of(c: &Conv2d) -> Array4<f32> {
    c.weight.value().clone().into_dimensionality().unwrap()
}

/// Checks that `f` computes the convolution by `approx` on a random 11x13 input, and that
/// its reported kernel error is the distance from the original kernel to `approx`.
fn check_chain(original: &Conv2d, f: &ConvFactorization, approx: Array4<f32>) {
    let x = uniform(&[2, original.config.in_channels, 11, 13], 99);
    let want = with_kernel(original, approx.clone()).forward(x.clone(), Mode::Eval).unwrap();
    let got = forward_chain(f, &x);
    let diff = rel_diff(&got, &want);
    assert!(diff < 1e-4, "{} {:?}: chain differs by {diff}", f.method, original.config);
    let w = kernel_of(original);
    let err: f64 = w.iter().zip(&approx).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>().sqrt();
    assert!(
        (err - f.kernel_error).abs() <= 1e-4 * (1.0 + err),
        "{}: reported {} vs {err}",
        f.method,
        f.kernel_error
    );
}

/// The full-rank chain must compute the original convolution itself.
fn check_exact(original: &Conv2d, f: &ConvFactorization) {
    let x = uniform(&[1, original.config.in_channels, 9, 10], 7);
    let want = original.clone().forward(x.clone(), Mode::Eval).unwrap();
    let diff = rel_diff(&forward_chain(f, &x), &want);
    assert!(diff < 1e-4 && f.relative_error < 1e-5, "{}: {diff} {}", f.method, f.relative_error);
}

#[test]
fn separable_chain_equals_conv_by_reconstructed_kernel() {
    for c in geometries() {
        let f = separable_conv("conv", &c, 2).unwrap();
        let s = separable(kernel_of(&c).view(), 2).unwrap();
        assert_eq!(f.layers[0].config.stride.1, 1);
        assert_eq!(f.layers[1].config.stride.0, 1);
        check_chain(&c, &f, s.reconstruct());
    }
}

#[test]
fn separable_error_is_the_dropped_singular_values() {
    let c = conv((6, 5), (3, 3), (1, 1), (0, 0), (1, 1), 4);
    let s = separable(kernel_of(&c).view(), 4).unwrap();
    let dropped: f64 = s.spectrum.iter().skip(4).map(|&v| f64::from(v).powi(2)).sum::<f64>();
    assert!((s.error() - dropped.sqrt()).abs() < 1e-9);
    let direct: f64 = kernel_of(&c)
        .iter()
        .zip(&s.reconstruct())
        .map(|(a, b)| f64::from(a - b).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!((direct - s.error()).abs() < 1e-4, "{direct} vs {}", s.error());
    // More rank, less error.
    let more = separable(kernel_of(&c).view(), 8).unwrap();
    assert!(more.error() < s.error());
}

#[test]
fn separable_full_rank_is_exact() {
    for c in geometries() {
        let (n, ch, kh, kw) = kernel_of(&c).dim();
        let f = separable_conv("conv", &c, (ch * kh).min(n * kw)).unwrap();
        check_exact(&c, &f);
    }
}

#[test]
fn tucker2_chain_equals_conv_by_reconstructed_kernel() {
    for c in geometries() {
        let config = Tucker2Config::new(3, 2);
        let f = tucker2_conv("conv", &c, &config).unwrap();
        let t = tucker2(kernel_of(&c).view(), &config).unwrap();
        assert_eq!(f.ranks, vec![3, 2]);
        assert_eq!(f.layers[1].config.stride, c.config.stride);
        check_chain(&c, &f, t.reconstruct());
    }
}

#[test]
fn tucker2_full_rank_is_exact() {
    for c in geometries() {
        let (n, ch) = (c.config.out_channels, c.config.in_channels);
        for config in [Tucker2Config::new(n, ch), Tucker2Config::new(n, ch).max_iters(0)] {
            check_exact(&c, &tucker2_conv("conv", &c, &config).unwrap());
        }
    }
}

#[test]
fn tucker2_hooi_is_no_worse_than_hosvd() {
    let c = conv((16, 12), (3, 3), (1, 1), (1, 1), (1, 1), 5);
    let w = kernel_of(&c);
    let hosvd = tucker2(w.view(), &Tucker2Config::new(5, 4).max_iters(0)).unwrap();
    let hooi = tucker2(w.view(), &Tucker2Config::new(5, 4).tol(1e-7)).unwrap();
    assert!(hooi.converged && hooi.error_history.len() > 1);
    assert!(hooi.kernel_error <= hosvd.kernel_error + 1e-6);
    assert!((hooi.error_history[0] - hosvd.relative_error).abs() < 1e-4);
}

#[test]
fn tucker2_on_lenet5_conv2_saves_parameters() {
    // LeNet-5 conv2: 20 -> 50 channels, 5x5, on 12x12 maps.
    let c = conv((50, 20), (5, 5), (1, 1), (0, 0), (1, 1), 6);
    let f = tucker2_conv("conv2", &c, &Tucker2Config::new(16, 10)).unwrap();
    assert_eq!(f.params_before, 50 * 20 * 25 + 50);
    assert_eq!(f.params_after, 20 * 10 + 16 * 10 * 25 + 50 * 16 + 50);
    assert!(f.params_after * 4 < f.params_before, "{} vs {}", f.params_after, f.params_before);
    assert!(f.relative_error > 0.0 && f.relative_error < 1.0);
    let t = tucker2(kernel_of(&c).view(), &Tucker2Config::new(16, 10)).unwrap();
    let x = uniform(&[2, 20, 12, 12], 8);
    let want = with_kernel(&c, t.reconstruct()).forward(x.clone(), Mode::Eval).unwrap();
    let got = forward_chain(&f, &x);
    assert_eq!(got.shape(), &[2, 50, 8, 8]);
    assert!(rel_diff(&got, &want) < 1e-4);
}

#[test]
fn cp_chain_equals_conv_by_reconstructed_kernel() {
    for c in geometries() {
        let config = CpConfig::new(6).max_iters(30).allow_unconverged(true);
        let f = cp_conv("conv", &c, &config).unwrap();
        let d = cp(kernel_of(&c).view(), &config).unwrap();
        assert_eq!(f.layers[1].config.groups, 6);
        assert_eq!(f.layers[2].config.groups, 6);
        check_chain(&c, &f, d.reconstruct());
    }
}

#[test]
fn cp_error_decreases_monotonically() {
    for (seed, rank) in [(10, 4), (11, 12), (12, 30)] {
        let c = conv((8, 6), (3, 3), (1, 1), (0, 0), (1, 1), seed);
        let config = CpConfig::new(rank).max_iters(60).tol(0.0).allow_unconverged(true);
        let d = cp(kernel_of(&c).view(), &config).unwrap();
        assert_eq!(d.iterations(), 60);
        assert!(!d.converged);
        for (i, p) in d.error_history.windows(2).enumerate() {
            assert!(p[1] <= p[0] * (1.0 + 1e-5) + 1e-7, "rank {rank} sweep {i}: {:?}", p);
        }
        assert!(d.error_history[59] < d.error_history[0]);
    }
}

#[test]
fn cp_recovers_an_exact_low_rank_kernel() {
    // Sum of three separable terms.
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let mut factor = |rows: usize| {
        ndarray::Array2::<f32>::from_shape_fn((rows, 3), |_| rng.random_range(-1.0..1.0))
    };
    let (o, i, v, h) = (factor(10), factor(8), factor(3), factor(3));
    let w = Array4::from_shape_fn((10, 8, 3, 3), |(n, c, y, x)| {
        (0..3).map(|r| o[[n, r]] * i[[c, r]] * v[[y, r]] * h[[x, r]]).sum::<f32>()
    });
    let d =
        cp(w.view(), &CpConfig::new(3).tol(1e-9).max_iters(2000).allow_unconverged(true)).unwrap();
    assert!(d.relative_error < 1e-3, "{}", d.relative_error);
}

#[test]
fn cp_is_deterministic_and_refuses_unconverged_by_default() {
    let c = conv((8, 6), (3, 3), (1, 1), (0, 0), (1, 1), 14);
    let w = kernel_of(&c);
    // Rank 12 > kh, so the seed matters for the spatial factors.
    let config = CpConfig::new(12).max_iters(20).allow_unconverged(true).seed(3);
    let (a, b) = (cp(w.view(), &config).unwrap(), cp(w.view(), &config).unwrap());
    assert_eq!(a.out_factor, b.out_factor);
    assert_eq!(a.error_history, b.error_history);
    let err = cp_conv("features.3", &c, &config.allow_unconverged(false).tol(0.0)).unwrap_err();
    match err {
        LowRankError::NotConverged { method, iterations, change } => {
            assert_eq!((method, iterations), ("CP-ALS", 20));
            assert!(change.is_finite());
        }
        other => panic!("expected NotConverged, got {other}"),
    }
}

#[test]
fn grouped_convolution_is_refused_by_path() {
    let config = Conv2dConfig::new(8, 8, 3).groups(2);
    let grouped = Conv2d::new(config, 0).unwrap();
    let results = [
        separable_conv("layer1.0.conv2", &grouped, 2).map(|_| ()),
        tucker2_conv("layer1.0.conv2", &grouped, &Tucker2Config::new(2, 2)).map(|_| ()),
        cp_conv("layer1.0.conv2", &grouped, &CpConfig::new(2)).map(|_| ()),
    ];
    for r in results {
        match r {
            Err(e @ LowRankError::Unsupported { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains("layer1.0.conv2") && msg.contains("groups = 2"), "{msg}");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
}

#[test]
fn ranks_out_of_range_name_the_bound() {
    let c = conv((6, 5), (3, 3), (1, 1), (0, 0), (1, 1), 15);
    let cases: Vec<(Result<ConvFactorization, LowRankError>, &str, &str)> = vec![
        (separable_conv("conv1", &c, 0), "rank", "1..=15"),
        (separable_conv("conv1", &c, 16), "rank", "1..=15"),
        (tucker2_conv("conv1", &c, &Tucker2Config::new(7, 2)), "r_out", "1..=6"),
        (tucker2_conv("conv1", &c, &Tucker2Config::new(2, 0)), "r_in", "1..=5"),
        (cp_conv("conv1", &c, &CpConfig::new(0)), "rank", "1..=45"),
        (cp_conv("conv1", &c, &CpConfig::new(46)), "rank", "1..=45"),
    ];
    for (res, name, bound) in cases {
        match res {
            Err(e @ LowRankError::InvalidParam { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(name) && msg.contains(bound), "{msg}");
                assert!(msg.contains("conv1") && msg.contains("[6, 5, 3, 3]"), "{msg}");
            }
            other => panic!("expected InvalidParam for {name}, got {other:?}"),
        }
    }
    let bad_tol = tucker2_conv("conv1", &c, &Tucker2Config::new(2, 2).tol(f64::NAN));
    assert!(matches!(bad_tol, Err(LowRankError::InvalidParam { .. })));
    let bad_ridge = cp_conv("conv1", &c, &CpConfig::new(2).ridge(-1.0));
    assert!(matches!(bad_ridge, Err(LowRankError::InvalidParam { .. })));
}

#[test]
fn non_finite_weights_are_refused() {
    for (what, bad) in [("weight", f32::NAN), ("bias", f32::INFINITY)] {
        let mut c = conv((4, 3), (3, 3), (1, 1), (0, 0), (1, 1), 16);
        match what {
            "weight" => c.weight.value_mut()[[1, 2, 0, 1]] = bad,
            _ => c.bias.as_mut().unwrap().value_mut()[[2]] = bad,
        }
        let results = [
            separable_conv("fc.conv", &c, 2).map(|_| ()),
            tucker2_conv("fc.conv", &c, &Tucker2Config::new(2, 2)).map(|_| ()),
            cp_conv("fc.conv", &c, &CpConfig::new(2)).map(|_| ()),
        ];
        for r in results {
            match r {
                Err(LowRankError::NonFinite { path, what: w }) => {
                    assert_eq!((path.as_str(), w), ("fc.conv", what));
                }
                other => panic!("expected NonFinite, got {other:?}"),
            }
        }
    }
    let mut w = Array4::<f32>::ones((2, 2, 3, 3));
    w[[0, 0, 0, 0]] = f32::NAN;
    assert!(matches!(separable(w.view(), 1), Err(LowRankError::NonFinite { .. })));
    assert!(matches!(
        tucker2(w.view(), &Tucker2Config::new(1, 1)),
        Err(LowRankError::NonFinite { .. })
    ));
    assert!(matches!(cp(w.view(), &CpConfig::new(1)), Err(LowRankError::NonFinite { .. })));
}

#[test]
fn zero_kernel_factorises_to_zero() {
    let w = Array4::<f32>::zeros((4, 3, 3, 3));
    assert_eq!(separable(w.view(), 2).unwrap().relative_error(), 0.0);
    assert_eq!(tucker2(w.view(), &Tucker2Config::new(2, 2)).unwrap().kernel_error, 0.0);
    let d = cp(w.view(), &CpConfig::new(2)).unwrap();
    assert!(d.converged && d.kernel_error == 0.0);
}
