//! Invariants of the decompositions: Eckart–Young errors, randomized SVD accuracy,
//! data-aware factors beating plain ones on held-out inputs.

use deepcompress_lowrank::svd::{RandomizedSvd, truncated_svd};
use ndarray::Array2;
use proptest::prelude::*;

fn frob(a: &Array2<f32>) -> f64 {
    a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

fn matrix(m: usize, n: usize, vals: &[f32]) -> Array2<f32> {
    Array2::from_shape_fn((m, n), |(i, j)| {
        vals[(i * n + j) % vals.len()] * (1.0 + (i as f32 * 0.37 + j as f32 * 0.11).sin())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// ||W - W_r||_F equals sqrt(sum of the dropped sigma^2), and the factors multiply to W_r.
    #[test]
    fn truncation_error_is_the_dropped_spectrum(
        m in 1usize..24, n in 1usize..24, vals in prop::collection::vec(-3.0f32..3.0, 1..64), r in 1usize..24
    ) {
        let w = matrix(m, n, &vals);
        let r = r.min(m.min(n));
        let t = truncated_svd(w.view(), r).unwrap();
        let (a, b) = t.factors();
        let actual = frob(&(&w - &a.dot(&b)));
        let predicted = t.error();
        prop_assert!((actual - predicted).abs() <= 1e-4 * frob(&w).max(1.0), "{actual} vs {predicted}");
        prop_assert!(t.relative_error() <= 1.0 + 1e-9);
    }

    /// Ranks outside 1..=min(m, n) are refused, never a panic.
    #[test]
    fn bad_ranks_are_errors(m in 1usize..10, n in 1usize..10, extra in 1usize..5) {
        let w = Array2::<f32>::ones((m, n));
        prop_assert!(truncated_svd(w.view(), 0).is_err());
        prop_assert!(truncated_svd(w.view(), m.min(n) + extra).is_err());
        prop_assert!(RandomizedSvd::default().compute(w.view(), m.min(n) + extra).is_err());
    }
}

/// A weight-like matrix: a decaying spectrum plus noise, as trained layers have.
fn decaying(m: usize, n: usize, seed: u64) -> Array2<f32> {
    let k = m.min(n);
    let basis = |rows: usize, cols: usize, s: u64| {
        let g = Array2::from_shape_fn((rows, cols), |(i, j)| {
            let x = ((i as u64 * 2654435761 + j as u64 * 40503 + s * 97) % 10007) as f32;
            (x / 10007.0 - 0.5) * 2.0
        });
        deepcompress_core::linalg::qr(g.view()).unwrap().0
    };
    let u = basis(m, k, seed);
    let v = basis(n, k, seed + 1);
    let s =
        Array2::from_diag(&ndarray::Array1::from_shape_fn(k, |i| 1.0 / (1.0 + i as f32).powf(0.8)));
    u.dot(&s).dot(&v.t())
}

#[test]
fn randomized_svd_is_within_five_percent_of_optimal() {
    let a = decaying(300, 200, 3);
    for rank in [8, 32] {
        let approx = RandomizedSvd::default().compute(a.view(), rank).unwrap();
        let err = frob(&(&a - &approx.reconstruct()));
        let best = truncated_svd(a.view(), rank).unwrap().error();
        assert!(err <= 1.05 * best, "rank {rank}: {err} vs optimal {best}");
    }
}

#[test]
fn randomized_svd_is_deterministic_for_a_seed() {
    let a = decaying(80, 60, 5);
    let r = RandomizedSvd { seed: 9, ..Default::default() };
    assert_eq!(r.compute(a.view(), 10).unwrap(), r.compute(a.view(), 10).unwrap());
}

#[test]
fn non_finite_matrices_are_refused() {
    let mut a = Array2::<f32>::ones((4, 4));
    a[[1, 2]] = f32::INFINITY;
    assert!(truncated_svd(a.view(), 2).is_err());
    assert!(RandomizedSvd::default().compute(a.view(), 2).is_err());
}
