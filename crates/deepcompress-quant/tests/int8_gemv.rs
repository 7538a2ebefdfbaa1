//! The int8 GEMV and GEMM and the 4-bit GEMV compute exactly the product of the
//! dequantized operands.

use deepcompress_quant::kernels::{Int4Matrix, Int8Matrix, quantize_activations};
use ndarray::Array2;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Integer accumulation is exact, so the result equals the f64 product of the decoded
    /// weights and activations up to the final f32 rounding.
    #[test]
    fn int8_gemv_equals_the_simulation(
        rows in 1usize..40, cols in 1usize..150, seed in 0u64..1000
    ) {
        let w = Array2::from_shape_fn((rows, cols), |(i, j)| {
            (((i * 131 + j * 71 + seed as usize * 7) % 997) as f32 / 498.5 - 1.0) * (1.0 + i as f32)
        });
        let x: Vec<f32> = (0..cols).map(|j| ((j * 53 + seed as usize) % 89) as f32 / 44.5 - 1.0).collect();
        let q = Int8Matrix::from_f32(w.view()).unwrap();
        let y = q.gemv(&x).unwrap();
        let (xq, sx) = quantize_activations(&x).unwrap();
        let wd = q.to_f32();
        for i in 0..rows {
            let want: f64 = (0..cols).map(|j| wd[[i, j]] as f64 * (xq[j] as f64 * sx as f64)).sum();
            let tol = 1e-5 * (0..cols).map(|j| (wd[[i, j]] as f64 * xq[j] as f64 * sx as f64).abs()).sum::<f64>() + 1e-6;
            prop_assert!((y[i] as f64 - want).abs() <= tol, "row {i}: {} vs {want}", y[i]);
        }
    }

    /// The batched product is exact in i32 for any shape (tiles, chunks and padding), and
    /// any input code including -128.
    #[test]
    fn int8_gemm_is_exact(
        rows in 1usize..70, n in 1usize..7, cols in 1usize..300, seed in 0u64..1000
    ) {
        let w = Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i * 131 + j * 71 + seed as usize * 7) % 997) as f32 / 498.5 - 1.0
        });
        let q = Int8Matrix::from_f32(w.view()).unwrap();
        let x: Vec<i8> = (0..n * cols).map(|t| ((t * 53 + seed as usize) % 256) as u8 as i8).collect();
        let got = q.matmul_i32(&x, n).unwrap();
        for i in 0..n {
            for o in 0..rows {
                let want: i32 = (0..cols).map(|j| x[i * cols + j] as i32 * q.codes()[o * cols + j] as i32).sum();
                prop_assert_eq!(got[i * rows + o], want, "({}, {})", i, o);
            }
        }
        // A second call reuses the packed layout and gives the same result.
        prop_assert_eq!(q.matmul_i32(&x, n).unwrap(), got);
    }

    /// The same for 4-bit weights with a scale per group of 64, rows padded to groups.
    #[test]
    fn int4_gemv_equals_the_simulation(
        rows in 1usize..20, cols in 1usize..200, seed in 0u64..1000
    ) {
        let w = Array2::from_shape_fn((rows, cols), |(i, j)| {
            (((i * 131 + j * 71 + seed as usize * 7) % 997) as f32 / 498.5 - 1.0) * (1.0 + j as f32 / 64.0)
        });
        let x: Vec<f32> = (0..cols).map(|j| ((j * 53 + seed as usize) % 89) as f32 / 44.5 - 1.0).collect();
        let q = Int4Matrix::from_f32(w.view()).unwrap();
        let y = q.gemv(&x).unwrap();
        let (xq, sx) = quantize_activations(&x).unwrap();
        let wd = q.to_f32();
        for i in 0..rows {
            let terms: Vec<f64> = (0..cols).map(|j| wd[[i, j]] as f64 * (xq[j] as f64 * sx as f64)).collect();
            let want: f64 = terms.iter().sum();
            let tol = 1e-5 * terms.iter().map(|t| t.abs()).sum::<f64>() + 1e-6;
            prop_assert!((y[i] as f64 - want).abs() <= tol, "row {i}: {} vs {want}", y[i]);
            // And within half a step of each group's scale from the original weights.
            for j in 0..cols {
                let step = (0..cols).filter(|k| k / 64 == j / 64).map(|k| w[[i, k]].abs()).fold(0.0f32, f32::max) / 7.0;
                prop_assert!((wd[[i, j]] - w[[i, j]]).abs() <= step / 2.0 * (1.0 + 1e-5) + 1e-7);
            }
        }
    }
}

#[test]
fn bad_input_is_refused() {
    let w = Array2::<f32>::ones((2, 3));
    let q = Int8Matrix::from_f32(w.view()).unwrap();
    assert!(q.gemv(&[1.0, 2.0]).is_err());
    assert!(q.gemv(&[1.0, f32::INFINITY, 0.0]).is_err());
    let mut bad = w.clone();
    bad[[0, 0]] = f32::NAN;
    assert!(Int8Matrix::from_f32(bad.view()).is_err());
    // All-zero input and weights: exact zeros, no division by zero.
    let z = Int8Matrix::from_f32(Array2::<f32>::zeros((2, 3)).view()).unwrap();
    assert_eq!(z.gemv(&[0.0; 3]).unwrap(), vec![0.0, 0.0]);
    let q4 = Int4Matrix::from_f32(w.view()).unwrap();
    assert!(q4.gemv(&[1.0, 2.0]).is_err());
    assert!(Int4Matrix::from_f32(bad.view()).is_err());
}
