//! Integer kernels against f32, as ratios within one run: a 4096x4096 weight times one
//! vector (GEMV), our f32 path (faer GEMM with one column, as a Linear at batch 1 runs)
//! against the int8 kernel (per-row int8 weights, dynamically quantized int8 input,
//! i32 accumulation, AVX2 when the CPU has it) and the 4-bit kernel (a scale per 64
//! weights, unpacked on the fly).
//!
//! Then the stored low-bit layers (`QuantTensor`, `BinaryTensor`, `TernaryTensor`) against
//! the dense weight, through `Tensor::matmul`, and the static-PTQ `QLinear` against
//! `Linear`.
//!
//! ```text
//! cargo bench -p deepcompress-benches --bench quant
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use deepcompress::core::layer::{Layer, Linear, Mode};
use deepcompress::core::ops::matmul;
use deepcompress::core::tensor::{DenseTensor, Tensor};
use deepcompress_benches::lowrank::weight_like;
use deepcompress_quant::kernels::{Int4Matrix, Int8Matrix};
use deepcompress_quant::{
    ActQuant, BinaryTensor, Granularity, ProductConfig, ProductTensor, QLinear, QuantScheme,
    QuantTensor, TernaryTensor,
};
use ndarray::Array2;
use std::hint::black_box;

fn gemv_4096(c: &mut Criterion) {
    let n = 4096;
    let w = weight_like(n, n, 5);
    let x: Vec<f32> = (0..n).map(|j| ((j * 31) % 17) as f32 / 8.5 - 1.0).collect();
    let xcol = Array2::from_shape_vec((n, 1), x.clone()).expect("column");
    let q = Int8Matrix::from_f32(w.view()).expect("finite");
    let q4 = Int4Matrix::from_f32(w.view()).expect("finite");
    let mut g = c.benchmark_group("gemv_4096");
    g.sample_size(50);
    g.bench_function("f32", |b| b.iter(|| matmul(black_box(w.view()), black_box(xcol.view()))));
    g.bench_function("int8", |b| b.iter(|| q.gemv(black_box(&x)).expect("gemv")));
    g.bench_function("int4_g64", |b| b.iter(|| q4.gemv(black_box(&x)).expect("gemv")));
    g.finish();
}

/// Batch 128 through the same 4096x4096 weights: `X Wᵀ` as a Linear computes it, our f32
/// GEMM (faer, both cores) against the int8 GEMM (both cores), with 8-bit weights and with
/// 7-bit ones (`from_f32_reduced_range`, whose AVX2 kernel needs no sign step).
fn gemm_4096_batch128(c: &mut Criterion) {
    let (n, batch) = (4096, 128);
    let w = weight_like(n, n, 5);
    let x = Array2::from_shape_fn((batch, n), |(i, j)| ((i * 7 + j * 31) % 17) as f32 / 8.5 - 1.0);
    let q = Int8Matrix::from_f32(w.view()).expect("finite");
    let q7 = Int8Matrix::from_f32_reduced_range(w.view()).expect("finite");
    let mut g = c.benchmark_group("gemm_4096_batch128");
    g.sample_size(20);
    g.bench_function("f32", |b| b.iter(|| matmul(black_box(x.view()), black_box(w.t()))));
    g.bench_function("int8", |b| b.iter(|| q.gemm(black_box(x.view())).expect("gemm")));
    g.bench_function("int8_reduced_range", |b| {
        b.iter(|| q7.gemm(black_box(x.view())).expect("gemm"))
    });
    g.finish();
}

/// Stored low-bit layers (what `QuantizeWeights`, GPTQ, `ConvertQat`, `ConvertBinary` and
/// `ProductQuantize` leave in a model) against the dense f32 weight, through `Tensor::matmul` as a Linear
/// calls it: `W x` with `x: [4096, n]`, at n = 1 and 128.
fn stored_layers_4096(c: &mut Criterion) {
    let n = 4096;
    let w = weight_like(n, n, 5);
    let dense = DenseTensor::new(w.clone().into_dyn());
    let quant = |s: QuantScheme| QuantTensor::quantize(&w.clone().into_dyn(), &s).expect("finite");
    let int8 = quant(QuantScheme::new(8));
    let int4 = quant(QuantScheme::new(4));
    let int3_groups = quant(
        QuantScheme::new(3).asymmetric().granularity(Granularity::PerGroup { rows: 1, cols: 128 }),
    );
    let scales: Vec<f32> =
        w.rows().into_iter().map(|r| r.iter().map(|v| v.abs()).sum::<f32>() / n as f32).collect();
    let signs: Vec<bool> = w.iter().map(|v| *v >= 0.0).collect();
    let binary = BinaryTensor::new(&[n, n], &signs, scales.clone()).expect("one sign per weight");
    let cut = 0.7 * w.iter().map(|v| v.abs()).sum::<f32>() / w.len() as f32;
    let ternary_codes: Vec<i8> =
        w.iter().map(|v| if v.abs() <= cut { 0 } else { v.signum() as i8 }).collect();
    let ternary = TernaryTensor::new(&[n, n], &ternary_codes, scales).expect("one code per weight");
    // Product quantization as Gong et al.'s best trade-off, d = 4 and k = 256 (2 bits per
    // weight); one Lloyd iteration, since only the speed is measured.
    let pq = ProductTensor::quantize(w.view(), &ProductConfig::new(4, 256).iterations(1), 0)
        .expect("finite");
    let layers: [(&str, &dyn Tensor); 7] = [
        ("f32", &dense),
        ("pq_d4_k256", &pq),
        ("int8", &int8),
        ("int4", &int4),
        ("int3_g128_affine", &int3_groups),
        ("binary", &binary),
        ("ternary", &ternary),
    ];
    for (batch, samples) in [(1usize, 30usize), (128, 10)] {
        let x =
            Array2::from_shape_fn((n, batch), |(i, j)| ((i * 7 + j * 31) % 17) as f32 / 8.5 - 1.0);
        let mut g = c.benchmark_group(format!("stored_4096_batch{batch}"));
        g.sample_size(samples);
        for (name, t) in layers {
            g.bench_function(name, |b| b.iter(|| t.matmul(black_box(x.view())).expect("matmul")));
        }
        g.finish();
    }
}

/// Product quantization between batch 1 and 128, where its product still uses lookup
/// tables (up to 16 columns; decoded rows beyond): d = 4, k = 256 against the dense weight
/// at 2 to 16 columns.
fn pq_columns_4096(c: &mut Criterion) {
    let n = 4096;
    let w = weight_like(n, n, 5);
    let dense = DenseTensor::new(w.clone().into_dyn());
    let pq = ProductTensor::quantize(w.view(), &ProductConfig::new(4, 256).iterations(1), 0)
        .expect("finite");
    let mut g = c.benchmark_group("pq_4096_columns");
    g.sample_size(20);
    for cols in [2usize, 4, 8, 16] {
        let x =
            Array2::from_shape_fn((n, cols), |(i, j)| ((i * 7 + j * 31) % 17) as f32 / 8.5 - 1.0);
        for (name, t) in [("f32", &dense as &dyn Tensor), ("pq_d4_k256", &pq)] {
            g.bench_function(format!("{name}/{cols}"), |b| {
                b.iter(|| t.matmul(black_box(x.view())).expect("matmul"))
            });
        }
    }
    g.finish();
}

/// The static-PTQ layer against the float one at batch 128: `QLinear` (int8 input and
/// output codes, i32 accumulation, fixed-point requantization) and `Linear`, through
/// `Layer::forward` on the same 4096x4096 weight and bias.
fn qlinear_4096_batch128(c: &mut Criterion) {
    let (n, batch) = (4096, 128);
    let w = weight_like(n, n, 5);
    let bias: Vec<f32> = (0..n).map(|i| (i % 7) as f32 / 100.0).collect();
    let x = Array2::from_shape_fn((batch, n), |(i, j)| ((i * 7 + j * 31) % 17) as f32 / 8.5 - 1.0)
        .into_dyn();
    let mut float = Linear::from_weights(w.clone(), Some(bias.clone().into())).expect("shapes");
    let y = float.forward(x.clone(), Mode::Eval).expect("forward");
    let range = |a: &ndarray::ArrayD<f32>| {
        let (lo, hi) = a.iter().fold((0.0f32, 0.0f32), |(l, h), v| (l.min(*v), h.max(*v)));
        ActQuant::from_range(lo, hi, 8).expect("finite range")
    };
    let mut int8 = QLinear::new(w.view(), Some(&bias), range(&x), range(&y)).expect("finite");
    let mut int7 =
        QLinear::new_reduced_range(w.view(), Some(&bias), range(&x), range(&y)).expect("finite");
    let mut g = c.benchmark_group("qlinear_4096_batch128");
    g.sample_size(20);
    g.bench_function("f32_linear", |b| {
        b.iter(|| float.forward(black_box(x.clone()), Mode::Eval).expect("forward"))
    });
    g.bench_function("int8_qlinear", |b| {
        b.iter(|| int8.forward(black_box(x.clone()), Mode::Eval).expect("forward"))
    });
    g.bench_function("int8_qlinear_7bit_weights", |b| {
        b.iter(|| int7.forward(black_box(x.clone()), Mode::Eval).expect("forward"))
    });
    g.finish();
}

criterion_group!(
    benches,
    gemv_4096,
    gemm_4096_batch128,
    stored_layers_4096,
    pq_columns_4096,
    qlinear_4096_batch128
);
criterion_main!(benches);
