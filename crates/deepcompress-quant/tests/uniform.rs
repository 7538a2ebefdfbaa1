//! Invariants of uniform quantization: error bounds, exact sizes, packing round trips,
//! exact constant tensors, refusals.

use deepcompress_core::tensor::Tensor;
use deepcompress_quant::pack::Packed;
use deepcompress_quant::{Granularity, QuantScheme, QuantTensor, Rounding};
use ndarray::{Array2, ArrayD};
use proptest::prelude::*;

fn bits() -> impl Strategy<Value = u8> {
    prop_oneof![2u8..=8, Just(16u8)]
}

fn granularity() -> impl Strategy<Value = Granularity> {
    prop_oneof![
        Just(Granularity::PerTensor),
        Just(Granularity::PerChannel),
        (1usize..4, 1usize..9).prop_map(|(rows, cols)| Granularity::PerGroup { rows, cols }),
    ]
}

fn matrix() -> impl Strategy<Value = Array2<f32>> {
    (1usize..9, 1usize..17).prop_flat_map(|(r, c)| {
        prop::collection::vec(-10.0f32..10.0, r * c)
            .prop_map(move |v| Array2::from_shape_vec((r, c), v).unwrap())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The product decodes block by block for few columns and whole for many; both give
    /// the decoded weights times the input, for every scheme.
    #[test]
    fn products_equal_the_decoded_weights_times_the_input(
        w in matrix(),
        b in bits(),
        g in granularity(),
        symmetric in any::<bool>(),
        n in prop_oneof![1usize..4, 17usize..20],
    ) {
        let s = if symmetric { QuantScheme::new(b) } else { QuantScheme::new(b).asymmetric() };
        let q = QuantTensor::quantize(&w.clone().into_dyn(), &s.granularity(g)).unwrap();
        let c = w.ncols();
        let x = Array2::from_shape_fn((c, n), |(i, j)| ((i * 5 + j * 3) % 7) as f32 - 3.0);
        let d = q.to_dense().into_shape_with_order((w.nrows(), c)).unwrap();
        let want = d.dot(&x);
        let got = q.matmul(x.view()).unwrap();
        for (a, e) in got.iter().zip(want.iter()) {
            prop_assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{} vs {}", a, e);
        }
    }

    /// Packing any codes that fit in `b` bits and unpacking gives them back.
    #[test]
    fn packing_round_trips(b in 1u8..=16, raw in prop::collection::vec(any::<u16>(), 0..70)) {
        let mask = if b == 16 { u16::MAX } else { (1u16 << b) - 1 };
        let codes: Vec<u16> = raw.iter().map(|c| c & mask).collect();
        let p = Packed::pack(&codes, b).unwrap();
        prop_assert_eq!(p.unpack(), codes.clone());
        prop_assert_eq!(p.storage_bits(), ((codes.len() * b as usize).div_ceil(8) * 8) as u64);
    }

    /// Round to nearest: every value within half a step of its block's scale.
    #[test]
    fn nearest_error_is_at_most_half_a_step(
        w in matrix(), b in bits(), sym in any::<bool>(), g in granularity()
    ) {
        let mut s = QuantScheme::new(b).granularity(g);
        if !sym { s = s.asymmetric(); }
        let q = QuantTensor::quantize(&w.clone().into_dyn(), &s).unwrap();
        let back = q.to_dense();
        for ((i, j), &x) in w.indexed_iter() {
            let step = q.scale_at(i, j);
            let err = (x - back[[i, j]]).abs();
            prop_assert!(err <= step / 2.0 * (1.0 + 1e-5) + 1e-6, "({i},{j}) {x}: err {err}, step {step}");
        }
    }

    /// The stored size is the packed codes plus an f32 scale (and a b-bit zero point) per block.
    #[test]
    fn storage_is_exact(w in matrix(), b in bits(), sym in any::<bool>(), g in granularity()) {
        let mut s = QuantScheme::new(b).granularity(g);
        if !sym { s = s.asymmetric(); }
        let q = QuantTensor::quantize(&w.clone().into_dyn(), &s).unwrap();
        let blocks = q.scales().len() as u64;
        let codes = (w.len() as u64 * b as u64).div_ceil(8) * 8;
        let zeros = if sym { 0 } else { (blocks * b as u64).div_ceil(8) * 8 };
        prop_assert_eq!(q.storage_bits(), codes + 32 * blocks + zeros);
    }

    /// A constant tensor (zero range) is stored exactly, whatever the scheme.
    #[test]
    fn constant_tensors_are_exact(c in -5.0f32..5.0, zero in any::<bool>(), b in bits(), sym in any::<bool>(), g in granularity()) {
        let c = if zero { 0.0 } else { c };
        let w = ArrayD::from_elem(vec![3, 5], c);
        let mut s = QuantScheme::new(b).granularity(g);
        if !sym { s = s.asymmetric(); }
        let q = QuantTensor::quantize(&w, &s).unwrap();
        prop_assert_eq!(q.to_dense(), w);
    }
}

/// Found by the property test above: at 16 bits the rounded zero point left the top of the
/// range half a step outside the grid, so the largest value was off by more than half a step.
#[test]
fn rounded_zero_point_keeps_both_ends_in_range() {
    let mut w = Array2::<f32>::zeros((2, 14));
    w[[1, 8]] = -9.839907;
    w[[1, 13]] = 9.7549925;
    for b in [2, 4, 8, 16] {
        let q = QuantTensor::quantize(&w.clone().into_dyn(), &QuantScheme::new(b).asymmetric())
            .unwrap();
        let back = q.to_dense();
        for ((i, j), &x) in w.indexed_iter() {
            let step = q.scale_at(i, j);
            assert!(
                (x - back[[i, j]]).abs() <= step / 2.0 * (1.0 + 1e-5) + 1e-6,
                "{b} bits ({i},{j})"
            );
        }
    }
}

/// Rows of very different ranges: one scale per row loses less than one for all.
#[test]
fn per_channel_error_is_below_per_tensor_error() {
    let w = Array2::from_shape_fn((8, 64), |(i, j)| {
        2f32.powi(i as i32 - 4) * (((j * 37 + i * 11) % 23) as f32 / 11.0 - 1.0)
    })
    .into_dyn();
    for b in [2, 3, 4, 8] {
        let sse = |g| {
            let q = QuantTensor::quantize(&w, &QuantScheme::new(b).granularity(g)).unwrap();
            (&q.to_dense() - &w).mapv(|d| (d as f64).powi(2)).sum()
        };
        let (channel, tensor) = (sse(Granularity::PerChannel), sse(Granularity::PerTensor));
        assert!(channel < tensor, "{b} bits: per-channel {channel} vs per-tensor {tensor}");
        let group = sse(Granularity::PerGroup { rows: 1, cols: 16 });
        assert!(group <= channel * 1.0001, "{b} bits: per-group {group} vs per-channel {channel}");
    }
}

/// Stochastic rounding is unbiased: the mean over seeds approaches the value, and every
/// single rounding is within one step.
#[test]
fn stochastic_rounding_is_unbiased() {
    let w = Array2::from_shape_fn((4, 16), |(i, j)| (i as f32 - 1.5) * 0.37 + j as f32 * 0.013)
        .into_dyn();
    let mut mean = ArrayD::<f64>::zeros(w.shape());
    let runs = 400;
    for seed in 0..runs {
        let s = QuantScheme::new(3).rounding(Rounding::Stochastic { seed });
        let q = QuantTensor::quantize(&w, &s).unwrap();
        let back = q.to_dense();
        for ((idx, &x), &y) in w.indexed_iter().zip(back.iter()) {
            assert!((x - y).abs() <= q.scale_at(idx[0], 0) * (1.0 + 1e-5), "{x} -> {y}");
        }
        mean += &back.mapv(f64::from);
    }
    mean /= runs as f64;
    let q = QuantTensor::quantize(&w, &QuantScheme::new(3)).unwrap();
    for ((idx, &x), &m) in w.indexed_iter().zip(mean.iter()) {
        // Standard error of a mean of 400 draws of a two-point variable: < step / 40.
        assert!((m - x as f64).abs() < q.scale_at(idx[0], 0) as f64 / 10.0, "{x} vs mean {m}");
    }
    // The same seed gives the same bits.
    let s = QuantScheme::new(3).rounding(Rounding::Stochastic { seed: 7 });
    assert_eq!(QuantTensor::quantize(&w, &s).unwrap(), QuantTensor::quantize(&w, &s).unwrap());
}

#[test]
fn bad_input_is_refused() {
    let w = ArrayD::from_elem(vec![2, 2], 1.0f32);
    for b in [0u8, 1, 9, 15, 17] {
        let e = QuantTensor::quantize(&w, &QuantScheme::new(b)).unwrap_err();
        assert!(e.to_string().contains("bits"), "{e}");
    }
    let g = QuantScheme::new(4).granularity(Granularity::PerGroup { rows: 0, cols: 4 });
    assert!(QuantTensor::quantize(&w, &g).unwrap_err().to_string().contains("group"));
    let mut nan = w.clone();
    nan[[1, 0]] = f32::NAN;
    assert!(
        QuantTensor::quantize(&nan, &QuantScheme::new(8))
            .unwrap_err()
            .to_string()
            .contains("non-finite")
    );
    let q = QuantTensor::quantize(&w, &QuantScheme::new(8)).unwrap();
    assert!(q.matmul(ndarray::Array2::zeros((3, 1)).view()).is_err());
    assert_eq!(
        q.matmul(ndarray::Array2::ones((2, 1)).view()).unwrap(),
        ndarray::array![[2.0], [2.0]]
    );
}

#[test]
fn large_products_split_into_row_blocks_agree_with_the_decoded_weights() {
    // 300 x 1001: 65 rows per decoded block, so five blocks on the rayon pool; 3-bit codes
    // of odd rows start mid-byte, groups of 7 columns cross byte boundaries.
    let w =
        Array2::from_shape_fn((300, 1001), |(i, j)| ((i * 37 + j * 11) % 101) as f32 / 50.0 - 1.0);
    let schemes = [
        QuantScheme::new(4),
        QuantScheme::new(3).asymmetric().granularity(Granularity::PerGroup { rows: 2, cols: 7 }),
        QuantScheme::new(8).granularity(Granularity::PerTensor),
    ];
    for s in schemes {
        let q = QuantTensor::quantize(&w.clone().into_dyn(), &s).unwrap();
        let d = q.to_dense().into_shape_with_order((300, 1001)).unwrap();
        for n in [1usize, 5, 40] {
            let x = Array2::from_shape_fn((1001, n), |(i, j)| ((i + 3 * j) % 9) as f32 - 4.0);
            let (got, want) = (q.matmul(x.view()).unwrap(), d.dot(&x));
            for (a, e) in got.iter().zip(want.iter()) {
                assert!((a - e).abs() <= 1e-3 * (1.0 + e.abs()), "{s:?}, n = {n}: {a} vs {e}");
            }
        }
    }
}
