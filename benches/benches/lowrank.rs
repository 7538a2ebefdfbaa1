//! Low-rank factorisation speed, as ratios within one run:
//!
//! * `svd_*`: full SVD against randomized SVD at rank 64 (2048x2048 and 4096x1024);
//! * `factored_linear_b128`: a 2048x2048 Linear against its rank-`r` pair on a batch of
//!   128 (the ideal speed-up is `m n / (r (m + n))`);
//! * `svd_backends_1024`: faer against LAPACK on a 1024x1024 matrix (LAPACK only with
//!   `--features lapack`).
//!
//! ```text
//! cargo bench -p deepcompress-benches --bench lowrank
//! cargo bench -p deepcompress-benches --bench lowrank --features lapack -- svd_backends
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use deepcompress::core::layer::{Layer, Linear, Mode};
use deepcompress::core::linalg::{self, Backend};
use deepcompress_benches::lowrank::weight_like;
use deepcompress_lowrank::factor::factor_linear;
use deepcompress_lowrank::svd::RandomizedSvd;
use ndarray::{Array1, ArrayD};
use std::hint::black_box;
use std::time::Duration;

fn svd(c: &mut Criterion) {
    for (m, n) in [(2048, 2048), (4096, 1024)] {
        let a = weight_like(m, n, 7);
        let mut g = c.benchmark_group(format!("svd_{m}x{n}"));
        g.sample_size(10).measurement_time(Duration::from_secs(30));
        g.bench_function("full", |b| b.iter(|| linalg::svd(black_box(a.view())).expect("svd")));
        g.bench_function("randomized_r64", |b| {
            b.iter(|| RandomizedSvd::default().compute(black_box(a.view()), 64).expect("rsvd"))
        });
        g.finish();
    }
}

fn factored_linear(c: &mut Criterion) {
    let (m, n) = (2048, 2048);
    let w = weight_like(m, n, 3);
    let dense = Linear::from_weights(w, Some(Array1::zeros(m))).expect("linear");
    let x = ArrayD::from_shape_fn(vec![128, n], |i| ((i[0] * 31 + i[1] * 7) % 17) as f32 - 8.0);
    let mut g = c.benchmark_group("factored_linear_b128");
    g.sample_size(30);
    let mut d = dense.clone();
    g.bench_function("dense", |b| {
        b.iter(|| d.forward(black_box(x.clone()), Mode::Eval).expect("fwd"))
    });
    for r in [64, 128, 256] {
        let mut pair = factor_linear("fc", &dense, r, None).expect("factor").layers;
        g.bench_function(format!("rank_{r}"), |b| {
            b.iter(|| {
                let mut y = black_box(x.clone());
                for l in pair.iter_mut() {
                    y = l.forward(y, Mode::Eval).expect("fwd");
                }
                y
            })
        });
    }
    g.finish();
}

fn backends(c: &mut Criterion) {
    let a = weight_like(1024, 1024, 11);
    let mut g = c.benchmark_group("svd_backends_1024");
    g.sample_size(10);
    for &backend in Backend::available() {
        g.bench_function(format!("{backend:?}"), |b| {
            b.iter(|| linalg::svd_using(backend, black_box(a.view())).expect("svd"))
        });
    }
    g.finish();
}

criterion_group!(benches, svd, factored_linear, backends);
criterion_main!(benches);
