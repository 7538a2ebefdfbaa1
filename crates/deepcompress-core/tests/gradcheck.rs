//! Finite-difference gradient checks for every layer: the analytic input and parameter
//! gradients of `loss = sum(r ⊙ layer(x))` must match central differences.

use deepcompress_core::layer::*;
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn random(shape: &[usize], rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    // Values spread away from zero so that ReLU and max-pool kinks are not straddled.
    ArrayD::from_shape_simple_fn(shape.to_vec(), || {
        let v: f32 = rng.random_range(0.2..1.5);
        if rng.random::<bool>() { v } else { -v }
    })
}

/// `sum(r * f(x))` in f64 with a fresh copy of the layer (same dropout mask, same state).
fn loss(proto: &dyn Layer, x: &ArrayD<f32>, r: &ArrayD<f32>) -> f64 {
    let mut l = proto.clone_box();
    let y = l.forward(x.clone(), Mode::Train).unwrap();
    y.iter().zip(r.iter()).map(|(a, b)| *a as f64 * *b as f64).sum()
}

fn close(analytic: f32, numeric: f64, what: &str) {
    let (a, n) = (analytic as f64, numeric);
    let tol = 3e-3 + 3e-2 * a.abs().max(n.abs());
    assert!((a - n).abs() <= tol, "{what}: analytic {a} vs numeric {n}");
}

fn check(proto: Box<dyn Layer>, input: &[usize]) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let x = random(input, &mut rng);
    check_at(proto, x, &mut rng);
}

/// Distinct values at least 0.05 apart (a shuffled ramp), so that a max-pool window's
/// winner cannot change under the ±0.01 perturbation.
fn separated(shape: &[usize], rng: &mut ChaCha8Rng) -> ArrayD<f32> {
    use rand::seq::SliceRandom;
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - 1.0).collect();
    v.shuffle(rng);
    ArrayD::from_shape_vec(shape.to_vec(), v).unwrap()
}

fn check_at(proto: Box<dyn Layer>, x: ArrayD<f32>, rng: &mut ChaCha8Rng) {
    let input = x.shape().to_vec();
    let input = input.as_slice();
    let out_shape = proto.output_shape(input).unwrap();
    let r = random(&out_shape, rng);
    let mut layer = proto.clone_box();
    layer.forward(x.clone(), Mode::Train).unwrap();
    let dx = layer.backward(r.clone(), true).unwrap().expect("input gradient requested");
    assert_eq!(dx.shape(), input);
    let eps = 1e-2f32;
    // Input gradient at up to 40 positions.
    let n = x.len();
    for k in (0..n).step_by((n / 40).max(1)) {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.as_slice_mut().unwrap()[k] += eps;
        xm.as_slice_mut().unwrap()[k] -= eps;
        let num =
            (loss(proto.as_ref(), &xp, &r) - loss(proto.as_ref(), &xm, &r)) / (2.0 * eps as f64);
        close(dx.as_slice().unwrap()[k], num, &format!("{} input[{k}]", proto.kind()));
    }
    // Parameter gradients at up to 40 positions each.
    let names: Vec<&str> = layer.params().iter().map(|(n, _)| *n).collect();
    for name in names {
        let grad = layer.params().into_iter().find(|(n, _)| *n == name).unwrap().1.grad().clone();
        let len = grad.len();
        for k in (0..len).step_by((len / 40).max(1)) {
            let bump = |d: f32| {
                let mut p = proto.clone_box();
                for (pn, param) in p.params_mut() {
                    if pn == name {
                        param.value_mut().as_slice_mut().unwrap()[k] += d;
                    }
                }
                loss(p.as_ref(), &x, &r)
            };
            let num = (bump(eps) - bump(-eps)) / (2.0 * eps as f64);
            close(grad.as_slice().unwrap()[k], num, &format!("{} {name}[{k}]", proto.kind()));
        }
    }
}

#[test]
fn linear() {
    check(Box::new(Linear::new(7, 5, true, 1)), &[3, 7]);
}

#[test]
fn linear_without_bias() {
    check(Box::new(Linear::new(4, 6, false, 2)), &[2, 4]);
}

#[test]
fn conv2d_plain() {
    check(Box::new(Conv2d::new(Conv2dConfig::new(2, 3, 3), 1).unwrap()), &[2, 2, 6, 6]);
}

#[test]
fn conv2d_stride_padding_dilation() {
    let c = Conv2dConfig::new(2, 4, 3).stride(2).padding(2).dilation(2);
    check(Box::new(Conv2d::new(c, 3).unwrap()), &[2, 2, 7, 7]);
}

#[test]
fn conv2d_grouped_and_depthwise() {
    check(
        Box::new(Conv2d::new(Conv2dConfig::new(4, 6, 3).groups(2).padding(1), 4).unwrap()),
        &[2, 4, 5, 5],
    );
    check(
        Box::new(Conv2d::new(Conv2dConfig::new(3, 3, 3).groups(3).bias(false), 5).unwrap()),
        &[2, 3, 5, 5],
    );
}

#[test]
fn conv2d_rectangular_kernel() {
    let mut c = Conv2dConfig::new(2, 2, 1);
    c.kernel = (3, 1);
    c.padding = (1, 0);
    check(Box::new(Conv2d::new(c, 6).unwrap()), &[1, 2, 5, 4]);
}

#[test]
fn pooling() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let x = separated(&[2, 3, 6, 6], &mut rng);
    check_at(Box::new(MaxPool2d::new(2, 2).unwrap()), x, &mut rng);
    let x = separated(&[1, 2, 7, 7], &mut rng);
    check_at(Box::new(MaxPool2d::new(3, 2).unwrap()), x, &mut rng);
    check(Box::new(AvgPool2d::new(2, 2).unwrap()), &[2, 3, 6, 6]);
    check(Box::new(GlobalAvgPool::default()), &[2, 3, 4, 5]);
}

#[test]
fn activations() {
    check(Box::new(Relu::default()), &[3, 8]);
    check(Box::new(Tanh::default()), &[3, 8]);
    check(Box::new(Sigmoid::default()), &[3, 8]);
    check(Box::new(Softmax::default()), &[3, 5]);
    check(Box::new(LogSoftmax::default()), &[3, 5]);
}

#[test]
fn flatten_and_dropout() {
    check(Box::new(Flatten::default()), &[2, 3, 2, 2]);
    check(Box::new(Dropout::new(0.3, 9).unwrap()), &[4, 10]);
}

#[test]
fn batchnorm_train_mode() {
    check(Box::new(BatchNorm::new_1d(4)), &[6, 4]);
    check(Box::new(BatchNorm::new_2d(3)), &[4, 3, 3, 3]);
}

#[test]
fn residual_identity_and_projection() {
    let body = Sequential::new().with(Linear::new(4, 4, true, 1)).with(Tanh::default());
    check(Box::new(Residual::identity(body)), &[3, 4]);
    let body = Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(2, 4, 3).stride(2).padding(1), 2).unwrap())
        .with(BatchNorm::new_2d(4));
    let proj =
        Sequential::new().with(Conv2d::new(Conv2dConfig::new(2, 4, 1).stride(2), 3).unwrap());
    check(Box::new(Residual::projection(body, proj)), &[4, 2, 6, 6]);
}

#[test]
fn sequential_chain() {
    let net = Sequential::new()
        .with(Conv2d::new(Conv2dConfig::new(1, 3, 3), 1).unwrap())
        .with(Relu::default())
        .with(MaxPool2d::new(2, 2).unwrap())
        .with(Flatten::default())
        .with(Linear::new(12, 4, true, 2));
    check(Box::new(net), &[2, 1, 6, 6]);
}

#[test]
fn compressed_conv2d_input_gradient() {
    use deepcompress_core::tensor::DenseTensor;
    let conv = Conv2d::new(Conv2dConfig::new(2, 3, 3).stride(2).padding(1), 8).unwrap();
    let w = DenseTensor::new(conv.weight.value().clone());
    let bias = conv.bias.as_ref().map(|b| b.value().clone().into_dimensionality().unwrap());
    check(Box::new(CompressedConv2d::new(conv.config, Box::new(w), bias).unwrap()), &[2, 2, 6, 6]);
}
