//! Eval forward time of resnet_small at batch 64, dense vs structurally pruned to 50 % of
//! its MACs (L1 filter ranking; speed does not depend on the weight values, so the pruned
//! model comes from an untrained one).
//!
//! ```text
//! cargo bench -p deepcompress-benches --bench structured
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use deepcompress::Selector;
use deepcompress::layer::Mode;
use deepcompress::models::resnet_small;
use deepcompress::pass::{Pass, PassContext};
use deepcompress_prune::structured::{Criterion as Rank, StructuredPrune, Target};
use ndarray::ArrayD;

fn forward(c: &mut Criterion) {
    let mut dense = resnet_small(0);
    let mut pruned = dense.clone();
    StructuredPrune::new(
        Selector::kinds(&["Conv2d"]),
        Rank::L1,
        Target::MacFraction(0.5),
        &[1, 1, 28, 28],
    )
    .apply(&mut pruned, &mut PassContext::new(0))
    .expect("resnet_small prunes");
    let input = [64, 1, 28, 28];
    let macs = |m: &deepcompress::Model| m.summary(&input).expect("summary").total().macs;
    eprintln!("MACs at batch 64: dense {}, pruned {}", macs(&dense), macs(&pruned));
    // Deterministic non-trivial input.
    let x =
        ArrayD::from_shape_fn(input.to_vec(), |i| ((i[2] * 28 + i[3] + i[0]) % 17) as f32 / 17.0);
    let mut g = c.benchmark_group("structured_resnet_small");
    g.throughput(Throughput::Elements(64));
    g.sample_size(30);
    g.bench_function("dense_forward_eval_batch64", |b| {
        b.iter(|| dense.forward(x.clone(), Mode::Eval).expect("forward"))
    });
    g.bench_function("pruned50_forward_eval_batch64", |b| {
        b.iter(|| pruned.forward(x.clone(), Mode::Eval).expect("forward"))
    });
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
