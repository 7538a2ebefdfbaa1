//! 1-D k-means for weight sharing: Lloyd (linear initialisation, Deep Compression's
//! choice) against the exact solver (`kmeans_exact`), on 1,000,000 trained-like weights, k = 32.
//! Prints the squared error of each (and of Lloyd's other initialisations) first.
//!
//! ```text
//! cargo bench -p deepcompress-benches --bench kmeans                       # all threads
//! RAYON_NUM_THREADS=1 cargo bench -p deepcompress-benches --bench kmeans   # one thread
//! ```

use criterion::{Criterion, criterion_group, criterion_main};
use deepcompress_prune::sharing::{Init, KMeans, kmeans_exact};
use std::hint::black_box;
use std::time::Duration;

fn kmeans_1e6_k32(c: &mut Criterion) {
    let w = deepcompress_benches::weights::trained_like(1_000_000, 42);
    let exact = kmeans_exact(&w, 32).expect("finite weights");
    println!("exact               SSE {:.6}", exact.sse);
    for init in [Init::Linear, Init::Density, Init::Random { seed: 0 }] {
        let l = KMeans::new(32).with_init(init).fit(&w).expect("finite weights");
        println!(
            "Lloyd {:<14} SSE {:.6} ({:.3} x optimal, {} iterations)",
            format!("{init:?}"),
            l.sse,
            l.sse / exact.sse,
            l.iterations
        );
    }
    let mut g = c.benchmark_group("kmeans_1e6_k32");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("lloyd_linear", |b| {
        b.iter(|| KMeans::new(32).with_init(Init::Linear).fit(black_box(&w)).expect("fit"))
    });
    g.bench_function("exact_dp", |b| b.iter(|| kmeans_exact(black_box(&w), 32).expect("fit")));
    g.finish();
}

criterion_group!(benches, kmeans_1e6_k32);
criterion_main!(benches);
