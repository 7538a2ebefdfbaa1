//! CSR kernel vs dense GEMM/GEMV on a 4096x4096 weight (an AlexNet-fc-sized layer, too
//! large for the caches, as in Deep Compression's speed-up measurements), at batch 1 and
//! batch 64, for 30 to 99 % sparsity. Weights are random with uniformly random positions
//! (`deepcompress_benches::sparse`; `compare_sparse.py` times scipy and numpy on the same
//! matrices).
//!
//! `cargo bench -p deepcompress-benches --bench sparse`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use deepcompress::tensor::{DenseTensor, Tensor};
use deepcompress_benches::sparse::{N, SPARSITIES, input, weight};
use deepcompress_prune::sparse::SparseTensor;
use std::hint::black_box;
use std::time::Duration;

fn csr_vs_dense(c: &mut Criterion) {
    for batch in [1usize, 64] {
        let mut g = c.benchmark_group(format!("csr_vs_dense_4096_batch{batch}"));
        g.sample_size(20)
            .measurement_time(Duration::from_secs(4))
            .warm_up_time(Duration::from_secs(1));
        let x = input(N, batch);
        let dense = DenseTensor::new(weight(N, 0.0));
        g.bench_function("dense", |b| b.iter(|| black_box(dense.matmul(x.view()).unwrap())));
        for sparsity in SPARSITIES {
            let s = SparseTensor::from_dense(&weight(N, sparsity), 5).unwrap();
            g.bench_with_input(BenchmarkId::new("csr", sparsity), &s, |b, s| {
                b.iter(|| black_box(s.matmul(x.view()).unwrap()))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, csr_vs_dense);
criterion_main!(benches);
