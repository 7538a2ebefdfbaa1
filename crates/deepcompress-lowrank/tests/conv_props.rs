//! Invariants of the convolution decompositions over random shapes, ranks and geometries.

use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Mode};
use deepcompress_lowrank::conv::{
    ConvFactorization, CpConfig, Tucker2Config, cp_conv, separable, separable_conv, tucker2,
    tucker2_conv,
};
use ndarray::{Array1, Array4, ArrayD};
use proptest::prelude::*;

/// A random convolution: weights in [-1, 1], kernel up to 4x4, stride up to 2, padding up
/// to 2, dilation up to 2.
fn conv_strategy() -> impl Strategy<Value = Conv2d> {
    (1usize..=6, 1usize..=6, 1usize..=4, 1usize..=4, 1usize..=2, 1usize..=2, 0usize..=2, 1usize..=2)
        .prop_flat_map(|(n, c, kh, kw, sh, sw, p, d)| {
            (
                prop::collection::vec(-1.0f32..1.0, n * c * kh * kw),
                prop::collection::vec(-1.0f32..1.0, n),
            )
                .prop_map(move |(w, b)| {
                    let config = Conv2dConfig {
                        in_channels: c,
                        out_channels: n,
                        kernel: (kh, kw),
                        stride: (sh, sw),
                        padding: (p, p.min(1)),
                        dilation: (d, 1),
                        groups: 1,
                        bias: true,
                    };
                    let w = Array4::from_shape_vec((n, c, kh, kw), w).unwrap();
                    Conv2d::from_weights(config, w, Some(Array1::from(b))).unwrap()
                })
        })
}

fn kernel_of(c: &Conv2d) -> Array4<f32> {
    c.weight.value().clone().into_dimensionality().unwrap()
}

fn dist(a: &Array4<f32>, b: &Array4<f32>) -> f64 {
    a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt()
}

/// `||chain(x) - conv_approx(x)|| / ||conv_approx(x)||` on a fixed 9x9 input.
fn chain_gap(original: &Conv2d, f: &ConvFactorization, approx: Array4<f32>) -> f64 {
    let c = original.config.in_channels;
    let x = ArrayD::from_shape_fn(vec![1, c, 9, 9], |ix| {
        ((ix[1] * 7 + ix[2] * 3 + ix[3]) % 5) as f32 - 2.0
    });
    let bias = original.bias.as_ref().map(|b| b.value().iter().copied().collect::<Array1<f32>>());
    let mut reference = Conv2d::from_weights(original.config, approx, bias).unwrap();
    let want = reference.forward(x.clone(), Mode::Eval).unwrap();
    let mut y = x;
    for layer in f.layers.clone().iter_mut() {
        y = layer.forward(y, Mode::Eval).unwrap();
    }
    let d: f64 = y.iter().zip(&want).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let n: f64 = want.iter().map(|b| f64::from(*b).powi(2)).sum();
    (d / n.max(1e-12)).sqrt()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn separable_error_is_exact_and_chain_matches(conv in conv_strategy(), pick in 0.0f64..1.0) {
        let w = kernel_of(&conv);
        let (n, c, kh, kw) = w.dim();
        let rank = 1 + (pick * ((c * kh).min(n * kw) - 1) as f64) as usize;
        let s = separable(w.view(), rank).unwrap();
        let direct = dist(&w, &s.reconstruct());
        prop_assert!((direct - s.error()).abs() < 1e-4 * (1.0 + direct));
        let f = separable_conv("p", &conv, rank).unwrap();
        prop_assert!(chain_gap(&conv, &f, s.reconstruct()) < 1e-4);
        prop_assert!(f.relative_error <= 1.0 + 1e-9);
    }

    #[test]
    fn tucker2_error_is_exact_and_chain_matches(conv in conv_strategy(), p in 0.0f64..1.0, q in 0.0f64..1.0) {
        let w = kernel_of(&conv);
        let (n, c, _, _) = w.dim();
        let ranks = (1 + (p * (n - 1) as f64) as usize, 1 + (q * (c - 1) as f64) as usize);
        let config = Tucker2Config::new(ranks.0, ranks.1);
        let t = tucker2(w.view(), &config).unwrap();
        prop_assert!((dist(&w, &t.reconstruct()) - t.kernel_error).abs() < 1e-4 * (1.0 + t.kernel_error));
        for pair in t.error_history.windows(2) {
            prop_assert!(pair[1] <= pair[0] + 1e-5);
        }
        let f = tucker2_conv("p", &conv, &config).unwrap();
        prop_assert!(chain_gap(&conv, &f, t.reconstruct()) < 1e-4);
        if ranks == (n, c) {
            prop_assert!(t.relative_error < 1e-5);
        }
    }

    #[test]
    fn cp_chain_matches_and_error_never_rises(conv in conv_strategy(), rank in 1usize..6) {
        let config = CpConfig::new(rank).max_iters(25).allow_unconverged(true);
        let f = cp_conv("p", &conv, &config);
        let w = kernel_of(&conv);
        let d = deepcompress_lowrank::conv::cp(w.view(), &config);
        match (f, d) {
            (Ok(f), Ok(d)) => {
                for pair in d.error_history.windows(2) {
                    prop_assert!(pair[1] <= pair[0] * (1.0 + 1e-5) + 1e-6, "{:?}", d.error_history);
                }
                prop_assert!(chain_gap(&conv, &f, d.reconstruct()) < 1e-4);
            }
            // Only a rank beyond the bound may fail (tiny kernels such as 1x1x1x2).
            (f, d) => {
                let dims = [w.dim().0, w.dim().1, w.dim().2, w.dim().3];
                let bound = dims.iter().product::<usize>() / dims.iter().max().unwrap();
                prop_assert!(rank > bound, "{:?} {:?}", f.err(), d.err());
            }
        }
    }
}
