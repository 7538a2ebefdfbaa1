//! Times our f32 and integer matrix products on a 4096x4096 weight at batch 1 (GEMV) and
//! batch 128 (GEMM, with 8-bit and with 7-bit weights), and prints one JSON line per
//! kernel with the median seconds. With a path argument it also writes the weight there (raw little-endian f32, row-major
//! `[out, in]`) for `compare_quant.py`, which times onnxruntime on the same weight.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin quant_matmul -- [dir] [repeats]
//! ```

use deepcompress::core::ops::matmul;
use deepcompress_benches::lowrank::weight_like;
use deepcompress_benches::median_secs;
use deepcompress_quant::kernels::{Int4Matrix, Int8Matrix};
use ndarray::Array2;
use std::hint::black_box;

const N: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().filter(|d| !d.is_empty());
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(21);
    let w = weight_like(N, N, 5);
    if let Some(d) = &dir {
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(format!("{d}/weight_{N}x{N}.f32"), bytes)?;
    }
    let q8 = Int8Matrix::from_f32(w.view())?;
    let q7 = Int8Matrix::from_f32_reduced_range(w.view())?;
    let q4 = Int4Matrix::from_f32(w.view())?;
    for batch in [1usize, 128] {
        let x =
            Array2::from_shape_fn((batch, N), |(i, j)| ((i * 7 + j * 31) % 17) as f32 / 8.5 - 1.0);
        let xs: Vec<f32> = x.row(0).to_vec();
        let line = |kernel: &str, secs: f64| {
            println!("{}", serde_json::json!({"batch": batch, "kernel": kernel, "seconds": secs}));
        };
        line(
            "ours-f32",
            median_secs(repeats, || {
                black_box(matmul(black_box(x.view()), black_box(w.t())));
            }),
        );
        if batch == 1 {
            line(
                "ours-int8",
                median_secs(repeats, || {
                    black_box(q8.gemv(black_box(&xs)).expect("gemv"));
                }),
            );
            line(
                "ours-int4",
                median_secs(repeats, || {
                    black_box(q4.gemv(black_box(&xs)).expect("gemv"));
                }),
            );
        } else {
            line(
                "ours-int8",
                median_secs(repeats, || {
                    black_box(q8.gemm(black_box(x.view())).expect("gemm"));
                }),
            );
            line(
                "ours-int8-7bit-weights",
                median_secs(repeats, || {
                    black_box(q7.gemm(black_box(x.view())).expect("gemm"));
                }),
            );
        }
    }
    Ok(())
}
