//! CSR kernel vs dense GEMM/GEMV on a 4096x4096 weight (an AlexNet-fc-sized layer, too
//! large for the caches, as in Deep Compression's speed-up measurements), at batch 1 and
//! batch 64, for 50 to 99 % sparsity. Weights are random with uniformly random positions.
//!
//! `cargo bench -p deepcompress-benches --bench sparse`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use deepcompress::tensor::{DenseTensor, Tensor};
use deepcompress_prune::sparse::SparseTensor;
use ndarray::{Array2, ArrayD, IxDyn};
use std::hint::black_box;
use std::time::Duration;

const N: usize = 4096;

/// Deterministic pseudo-random values in [-1, 1) (SplitMix64).
fn uniform(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 40) as f32 / (1u64 << 23) as f32) - 1.0
    }
}

fn weight(sparsity: f64) -> ArrayD<f32> {
    let mut r = uniform(1);
    let mut keep = uniform(2);
    ArrayD::from_shape_fn(IxDyn(&[N, N]), |_| {
        let v = r();
        if (keep() as f64 + 1.0) / 2.0 < sparsity { 0.0 } else { v }
    })
}

fn csr_vs_dense(c: &mut Criterion) {
    for batch in [1usize, 64] {
        let mut g = c.benchmark_group(format!("csr_vs_dense_4096_batch{batch}"));
        g.sample_size(20)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        let mut r = uniform(3);
        let x = Array2::from_shape_fn((N, batch), |_| r());
        let dense = DenseTensor::new(weight(0.0));
        g.bench_function("dense", |b| b.iter(|| black_box(dense.matmul(x.view()).unwrap())));
        for sparsity in [0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99] {
            let s = SparseTensor::from_dense(&weight(sparsity), 5).unwrap();
            g.bench_with_input(BenchmarkId::new("csr", sparsity), &s, |b, s| {
                b.iter(|| black_box(s.matmul(x.view()).unwrap()))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, csr_vs_dense);
criterion_main!(benches);
