//! Binary and ternary storage: packing round trips, exact sizes, kernels against dense,
//! and the constraints' behaviour.

use deepcompress_core::Param;
use deepcompress_core::ops::matmul;
use deepcompress_core::tensor::Tensor;
use deepcompress_quant::{BinaryConnect, BinaryScale, BinaryTensor, TernaryTensor, TernaryWeights};
use ndarray::{Array2, ArrayD, Ix2};
use proptest::prelude::*;

fn as2(a: ArrayD<f32>) -> Array2<f32> {
    let (r, c) = (a.shape()[0], a.len() / a.shape()[0]);
    a.into_shape_with_order((r, c)).unwrap().into_dimensionality::<Ix2>().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn binary_round_trip_size_and_kernel(
        rows in 1usize..9, cols in 1usize..40, per_channel: bool, seed in 0u64..1000, n in 1usize..4,
    ) {
        let signs: Vec<bool> = (0..rows * cols).map(|k| !(k as u64 * 2654435761 + seed).is_multiple_of(3)).collect();
        let scales: Vec<f32> = if per_channel {
            (0..rows).map(|r| 0.1 + r as f32 * 0.25).collect()
        } else {
            vec![0.75]
        };
        let b = BinaryTensor::new(&[rows, cols], &signs, scales.clone()).unwrap();
        prop_assert_eq!(b.storage_bits(), (rows * cols).div_ceil(8) as u64 * 8 + 32 * scales.len() as u64);
        let d = b.to_dense();
        for (k, v) in d.iter().enumerate() {
            let s = if per_channel { scales[k / cols] } else { scales[0] };
            prop_assert_eq!(*v, if signs[k] { s } else { -s });
        }
        let x = Array2::from_shape_fn((cols, n), |(i, j)| ((i * 5 + j * 3 + seed as usize) % 11) as f32 - 5.0);
        let y = b.matmul(x.view()).unwrap();
        let want = matmul(as2(d).view(), x.view());
        prop_assert!((&y - &want).iter().all(|e| e.abs() <= 1e-4 * (1.0 + want.iter().fold(0.0f32, |a, v| a.max(v.abs())))));
    }

    #[test]
    fn ternary_round_trip_size_and_kernel(
        rows in 1usize..9, cols in 1usize..40, per_channel: bool, seed in 0u64..1000, n in 1usize..4,
    ) {
        let vals: Vec<i8> = (0..rows * cols).map(|k| ((k as u64 * 40503 + seed) % 3) as i8 - 1).collect();
        let scales: Vec<f32> = if per_channel { (0..rows).map(|r| r as f32 * 0.5).collect() } else { vec![1.5] };
        let t = TernaryTensor::new(&[rows, cols], &vals, scales.clone()).unwrap();
        prop_assert_eq!(t.storage_bits(), (2 * rows * cols).div_ceil(8) as u64 * 8 + 32 * scales.len() as u64);
        let d = t.to_dense();
        for (k, v) in d.iter().enumerate() {
            let s = if per_channel { scales[k / cols] } else { scales[0] };
            prop_assert_eq!(*v, f32::from(vals[k]) * s);
        }
        let x = Array2::from_shape_fn((cols, n), |(i, j)| ((i * 7 + j + seed as usize) % 13) as f32 - 6.0);
        let y = t.matmul(x.view()).unwrap();
        let want = matmul(as2(d).view(), x.view());
        prop_assert!((&y - &want).iter().all(|e| e.abs() <= 1e-4 * (1.0 + want.iter().fold(0.0f32, |a, v| a.max(v.abs())))));
    }

    #[test]
    fn constraints_store_exactly_what_they_simulate(
        rows in 1usize..6, cols in 1usize..30, seed in 0u64..1000, per_channel: bool,
    ) {
        let w = ArrayD::from_shape_fn(vec![rows, cols], |i| {
            (((i[0] * 31 + i[1] * 17 + seed as usize) % 41) as f32 - 20.0) / 25.0
        });
        let scale = if per_channel { BinaryScale::PerChannel } else { BinaryScale::PerTensor };
        let bc = BinaryConnect::new(scale);
        let mut p = Param::new(w.clone());
        p.set_constraint(Box::new(bc.clone()));
        prop_assert!(p.value().iter().all(|v| v.abs() <= 1.0));
        prop_assert_eq!(p.effective().into_owned(), bc.binarize(p.value()).unwrap().to_dense());
        let twn = TernaryWeights::new(0.7, per_channel).unwrap();
        let t = twn.ternarize(&w).unwrap();
        let mut p = Param::new(w.clone());
        p.set_constraint(Box::new(twn));
        prop_assert_eq!(p.effective().into_owned(), t.to_dense());
        prop_assert_eq!(p.value(), &w); // TWN keeps the full-precision weights as they are
        // At most 3 distinct magnitudes per scale block: 0 and ±α.
        for (k, v) in t.to_dense().iter().enumerate() {
            let s = t.scales()[if per_channel { k / cols } else { 0 }];
            prop_assert!(*v == 0.0 || v.abs() == s);
        }
    }
}

#[test]
fn twn_threshold_and_scale_follow_the_paper() {
    // mean|W| = 0.5, Δ = 0.35: 0.3 and -0.2 become 0; α = mean(0.6, 0.9, 0.5) = 2/3.
    let w = ArrayD::from_shape_vec(vec![1, 5], vec![0.6f32, -0.9, 0.3, -0.2, 0.5]).unwrap();
    let t = TernaryWeights::new(0.7, false).unwrap().ternarize(&w).unwrap();
    assert!((t.scales()[0] - 2.0 / 3.0).abs() < 1e-6);
    let d = t.to_dense();
    let s = t.scales()[0];
    assert_eq!(d.iter().copied().collect::<Vec<_>>(), vec![s, -s, 0.0, 0.0, s]);
    // All-zero weights: exact zeros, no division by zero.
    let z = TernaryWeights::new(0.7, true).unwrap().ternarize(&ArrayD::zeros(vec![2, 3])).unwrap();
    assert!(z.to_dense().iter().all(|v| *v == 0.0));
    let z =
        BinaryConnect::new(BinaryScale::PerChannel).binarize(&ArrayD::zeros(vec![2, 3])).unwrap();
    assert!(z.to_dense().iter().all(|v| *v == 0.0));
}

#[test]
fn binary_connect_keeps_the_straight_through_gradient_and_clips_shadow_weights() {
    let mut p = Param::new(ArrayD::from_shape_vec(vec![1, 3], vec![0.2f32, -0.7, 0.9]).unwrap());
    p.set_constraint(Box::new(BinaryConnect::new(BinaryScale::None)));
    assert_eq!(p.effective().iter().copied().collect::<Vec<_>>(), vec![1.0, -1.0, 1.0]);
    p.grad_mut().fill(-0.5);
    p.adjust_grad();
    assert!(p.grad().iter().all(|g| *g == -0.5));
    // A plain SGD step pushes the third weight to 1.4; the projection clips it to 1.
    let (v, g) = p.value_and_grad_mut();
    *v -= &(g * 1.0);
    p.project();
    let want = [0.7f32, -0.2, 1.0];
    assert!(p.value().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{:?}", p.value());
}

#[test]
fn bad_storage_input_is_refused() {
    assert!(BinaryTensor::new(&[2, 2], &[true; 3], vec![1.0]).is_err());
    assert!(BinaryTensor::new(&[2, 2], &[true; 4], vec![1.0, 1.0, 1.0]).is_err());
    assert!(BinaryTensor::new(&[2, 2], &[true; 4], vec![f32::NAN]).is_err());
    assert!(TernaryTensor::new(&[2, 2], &[0, 1, -1, 3], vec![1.0]).is_err());
    assert!(TernaryTensor::new(&[2, 2], &[0; 4], vec![-1.0]).is_err());
    let b = BinaryTensor::new(&[2, 2], &[true; 4], vec![1.0]).unwrap();
    assert!(b.matmul(Array2::zeros((3, 1)).view()).is_err());
    let nan = ArrayD::from_elem(vec![2, 2], f32::NAN);
    assert!(BinaryConnect::new(BinaryScale::PerTensor).binarize(&nan).is_err());
    assert!(TernaryWeights::new(0.7, false).unwrap().ternarize(&nan).is_err());
    assert!(TernaryWeights::new(-0.1, false).is_err());
}

#[test]
fn large_products_decode_row_blocks_like_the_dense_weight() {
    // 300 x 1001: rows start mid-byte for both widths; five blocks on the rayon pool.
    let (r, c) = (300usize, 1001usize);
    let signs: Vec<bool> = (0..r * c).map(|k| (k * 7 + k / 13) % 3 != 0).collect();
    let scales: Vec<f32> = (0..r).map(|i| 0.1 + i as f32 / 100.0).collect();
    let b = BinaryTensor::new(&[r, c], &signs, scales.clone()).unwrap();
    let values: Vec<i8> = (0..r * c).map(|k| ((k * 5 + k / 7) % 3) as i8 - 1).collect();
    let t = TernaryTensor::new(&[r, c], &values, vec![0.7]).unwrap();
    for (name, w) in [("binary", &b as &dyn Tensor), ("ternary", &t as &dyn Tensor)] {
        for n in [1usize, 40] {
            let x = Array2::from_shape_fn((c, n), |(i, j)| ((i + 3 * j) % 9) as f32 - 4.0);
            let (got, want) =
                (w.matmul(x.view()).unwrap(), matmul(as2(w.to_dense()).view(), x.view()));
            for (a, e) in got.iter().zip(want.iter()) {
                assert!((a - e).abs() <= 1e-3 * (1.0 + e.abs()), "{name}, n = {n}: {a} vs {e}");
            }
        }
    }
}
