//! Low-rank factorisation speed, as ratios within one run:
//!
//! * `svd_*`: full SVD against randomized SVD at rank 64 (2048x2048 and 4096x1024);
//! * `factored_linear_b128`: a 2048x2048 Linear against its rank-`r` pair on a batch of
//!   128 (the ideal speed-up is `m n / (r (m + n))`);
//! * `tucker2_lenet5_conv2`: LeNet-5's conv2 (trained 2 epochs) against its Tucker-2 chains
//!   with VBMF ranks and with ranks for 25 % of the weights, on 128 real conv2 inputs;
//! * `svd_backends_1024`: faer against LAPACK on a 1024x1024 matrix (LAPACK only with
//!   `--features lapack`).
//!
//! ```text
//! cargo bench -p deepcompress-benches --bench lowrank
//! cargo bench -p deepcompress-benches --bench lowrank --features lapack -- svd_backends
//! ```

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use deepcompress::core::layer::{Conv2d, Layer, Linear, Mode};
use deepcompress::core::linalg::{self, Backend};
use deepcompress::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::models::lenet5;
use deepcompress::train::{Adam, TrainConfig, Trainer};
use deepcompress_benches::lowrank::weight_like;
use deepcompress_lowrank::conv::{Tucker2Config, tucker2_conv};
use deepcompress_lowrank::factor::factor_linear;
use deepcompress_lowrank::rank::vbmf_tucker_ranks;
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
    // The input copy each call consumes is made outside the timed region.
    g.bench_function("dense", |b| {
        b.iter_batched(
            || x.clone(),
            |x| d.forward(x, Mode::Eval).expect("fwd"),
            BatchSize::LargeInput,
        )
    });
    for r in [64, 128, 256] {
        let mut pair = factor_linear("fc", &dense, r, None).expect("factor").layers;
        g.bench_function(format!("rank_{r}"), |b| {
            b.iter_batched(
                || x.clone(),
                |mut y| {
                    for l in pair.iter_mut() {
                        y = l.forward(y, Mode::Eval).expect("fwd");
                    }
                    y
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn tucker2_conv2(c: &mut Criterion) {
    let mnist = Mnist::embedded().expect("embedded MNIST");
    let train = mnist.train.normalize(MNIST_MEAN, MNIST_STD).expect("normalize");
    let test = mnist.test.take(128).normalize(MNIST_MEAN, MNIST_STD).expect("normalize");
    let mut model = lenet5(0);
    let cfg = TrainConfig { epochs: 2, batch_size: 128, ..TrainConfig::default() };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).expect("train");
    let x = model
        .capture_inputs(&["conv2"], &test.inputs, 128)
        .expect("capture")
        .remove("conv2")
        .expect("conv2");
    let conv = model.layer_as::<Conv2d>("conv2").expect("conv2").clone();
    let w = conv.weight.value().view().into_dimensionality::<ndarray::Ix4>().expect("4-D");
    let vbmf = vbmf_tucker_ranks(w).expect("vbmf");
    let quarter = Tucker2Config::for_fraction(0.25, (50, 20, 5, 5)).ranks;
    let mut chains = Vec::new();
    for (label, (r_out, r_in)) in [("vbmf", vbmf), ("quarter", quarter)] {
        let f = tucker2_conv("conv2", &conv, &Tucker2Config::new(r_out, r_in)).expect("tucker");
        println!(
            "conv2 Tucker-2 {label} ranks ({r_out}, {r_in}): {} -> {} parameters, relative kernel error {:.3}",
            f.params_before, f.params_after, f.relative_error
        );
        chains.push((format!("tucker2_{label}_{r_out}x{r_in}"), f.into_layers()));
    }
    let mut dense = conv;
    let mut g = c.benchmark_group("tucker2_lenet5_conv2");
    g.sample_size(50);
    // The input copy each call consumes is made outside the timed region.
    g.bench_function("dense", |b| {
        b.iter_batched(
            || x.clone(),
            |x| dense.forward(x, Mode::Eval).expect("fwd"),
            BatchSize::LargeInput,
        )
    });
    for (name, chain) in chains.iter_mut() {
        g.bench_function(name.as_str(), |b| {
            b.iter_batched(
                || x.clone(),
                |mut y| {
                    for l in chain.iter_mut() {
                        y = l.forward(y, Mode::Eval).expect("fwd");
                    }
                    y
                },
                BatchSize::LargeInput,
            )
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

criterion_group!(benches, svd, factored_linear, tucker2_conv2, backends);
criterion_main!(benches);
