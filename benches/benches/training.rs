//! Training speed: LeNet-300-100 for 40 epochs (the scikit-learn comparison), and
//! LeNet-5 forward + backward throughput at batch 128.
//!
//! ```text
//! cargo bench -p deepcompress-benches --bench training
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use deepcompress::data::Mnist;
use deepcompress::layer::Mode;
use deepcompress::models::lenet5;
use deepcompress::train::cross_entropy;
use std::time::Duration;

fn lenet_300_100_40_epochs(c: &mut Criterion) {
    let mnist = Mnist::embedded().expect("embedded MNIST");
    let mut g = c.benchmark_group("train");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(60))
        .warm_up_time(Duration::from_secs(1));
    g.bench_function("lenet_300_100_40_epochs_batch128", |b| {
        b.iter(|| deepcompress_benches::time_lenet_300_100(&mnist, 40).expect("training runs"))
    });
    g.finish();
}

fn lenet5_forward_backward(c: &mut Criterion) {
    let mnist = Mnist::embedded().expect("embedded MNIST");
    let idx: Vec<usize> = (0..128).collect();
    let (x, y) = mnist.train.batch(&idx);
    let mut model = lenet5(0);
    let mut g = c.benchmark_group("lenet5");
    g.throughput(Throughput::Elements(128));
    g.sample_size(20);
    g.bench_function("forward_backward_batch128", |b| {
        b.iter(|| {
            model.zero_grad();
            let logits = model.forward(x.clone(), Mode::Train).expect("forward");
            let (_, grad) = cross_entropy(&logits, &y).expect("loss");
            model.backward(grad).expect("backward");
        })
    });
    g.bench_function("forward_eval_batch128", |b| {
        b.iter(|| model.forward(x.clone(), Mode::Eval).expect("forward"))
    });
    g.finish();
}

criterion_group!(benches, lenet_300_100_40_epochs, lenet5_forward_backward);
criterion_main!(benches);
