//! Reference models used throughout the survey's experiments and our tests.

use crate::Result;
use crate::layer::{
    BatchNorm, Conv2d, Conv2dConfig, Flatten, GlobalAvgPool, Init, Linear, MaxPool2d, Relu,
    Residual, Sequential,
};
use crate::model::Model;

/// LeNet-300-100 (LeCun et al. 1998): 784-300-100-10 with ReLU, 266,610 parameters.
/// Layers `fc1`, `fc2`, `fc3` (Deep Compression's ip1-ip3). Takes `[n, 1, 28, 28]` or `[n, 784]`.
/// Weights use Glorot initialisation, as scikit-learn's MLP does.
///
/// ```
/// let m = deepcompress_core::models::lenet_300_100(0);
/// assert_eq!(m.num_params(), 266_610);
/// ```
pub fn lenet_300_100(seed: u64) -> Model {
    Model::new(
        Sequential::new()
            .with_named("flatten", Flatten::default())
            .with_named("fc1", Linear::with_init(784, 300, true, Init::Glorot, seed))
            .with_named("relu1", Relu::default())
            .with_named(
                "fc2",
                Linear::with_init(300, 100, true, Init::Glorot, seed.wrapping_add(1)),
            )
            .with_named("relu2", Relu::default())
            .with_named(
                "fc3",
                Linear::with_init(100, 10, true, Init::Glorot, seed.wrapping_add(2)),
            ),
    )
}

/// LeNet-5 as used by Deep Compression (Caffe's variant): conv 20@5x5 -> maxpool 2 ->
/// conv 50@5x5 -> maxpool 2 -> fc 800->500 -> ReLU -> fc 500->10; 431,080 parameters.
/// Layers `conv1`, `conv2`, `fc1`, `fc2`. Takes `[n, 1, 28, 28]`.
///
/// ```
/// let m = deepcompress_core::models::lenet5(0);
/// assert_eq!(m.num_params(), 431_080);
/// ```
pub fn lenet5(seed: u64) -> Model {
    let conv =
        |cin, cout, s| Conv2d::new(Conv2dConfig::new(cin, cout, 5), s).expect("valid config");
    let pool = || MaxPool2d::new(2, 2).expect("valid pool");
    Model::new(
        Sequential::new()
            .with_named("conv1", conv(1, 20, seed))
            .with_named("pool1", pool())
            .with_named("conv2", conv(20, 50, seed.wrapping_add(1)))
            .with_named("pool2", pool())
            .with_named("flatten", Flatten::default())
            .with_named("fc1", Linear::new(800, 500, true, seed.wrapping_add(2)))
            .with_named("relu1", Relu::default())
            .with_named("fc2", Linear::new(500, 10, true, seed.wrapping_add(3))),
    )
}

/// A multilayer perceptron with ReLU between the given sizes (`&[784, 300, 100, 10]`).
/// Linear layers are `fc1`, `fc2`, ...; the input is flattened first.
///
/// ```
/// let m = deepcompress_core::models::mlp(&[784, 30, 10], 0).unwrap();
/// assert_eq!(m.num_params(), 784 * 30 + 30 + 30 * 10 + 10);
/// assert!(deepcompress_core::models::mlp(&[784], 0).is_err());
/// ```
pub fn mlp(sizes: &[usize], seed: u64) -> Result<Model> {
    if sizes.len() < 2 || sizes.contains(&0) {
        return Err(crate::CoreError::param(
            "mlp sizes",
            format!("{sizes:?}"),
            "need at least two positive sizes",
        ));
    }
    let mut net = Sequential::new().with_named("flatten", Flatten::default());
    for (i, w) in sizes.windows(2).enumerate() {
        net = net.with_named(
            &format!("fc{}", i + 1),
            Linear::new(w[0], w[1], true, seed.wrapping_add(i as u64)),
        );
        if i + 2 < sizes.len() {
            net = net.with_named(&format!("relu{}", i + 1), Relu::default());
        }
    }
    Ok(Model::new(net))
}

/// A small residual CNN with BatchNorm for 28x28 grey images: a 16-channel stem, three
/// basic blocks (16, 32 stride 2 with projection, 64 stride 2 with projection), global
/// average pooling and a classifier. It is the narrow, non-plain architecture on which
/// structured pruning and compact filters must prove themselves.
///
/// ```
/// let m = deepcompress_core::models::resnet_small(0);
/// let s = m.summary(&[1, 1, 28, 28]).unwrap();
/// assert_eq!(s.output, vec![1, 10]);
/// ```
pub fn resnet_small(seed: u64) -> Model {
    let conv = |cin, cout, k: usize, stride, s| {
        Conv2d::new(Conv2dConfig::new(cin, cout, k).stride(stride).padding(k / 2).bias(false), s)
            .expect("valid config")
    };
    let block = |cin: usize, cout: usize, stride: usize, s: u64| {
        let body = Sequential::new()
            .with_named("conv1", conv(cin, cout, 3, stride, s))
            .with_named("bn1", BatchNorm::new_2d(cout))
            .with_named("relu", Relu::default())
            .with_named("conv2", conv(cout, cout, 3, 1, s + 1))
            .with_named("bn2", BatchNorm::new_2d(cout));
        let res = if stride == 1 && cin == cout {
            Residual::identity(body)
        } else {
            let proj = Sequential::new()
                .with_named("conv", conv(cin, cout, 1, stride, s + 2))
                .with_named("bn", BatchNorm::new_2d(cout));
            Residual::projection(body, proj)
        };
        Sequential::new().with_named("block", res).with_named("relu", Relu::default())
    };
    Model::new(
        Sequential::new()
            .with_named("conv1", conv(1, 16, 3, 1, seed))
            .with_named("bn1", BatchNorm::new_2d(16))
            .with_named("relu", Relu::default())
            .with_named("layer1", block(16, 16, 1, seed.wrapping_add(10)))
            .with_named("layer2", block(16, 32, 2, seed.wrapping_add(20)))
            .with_named("layer3", block(32, 64, 2, seed.wrapping_add(30)))
            .with_named("pool", GlobalAvgPool::default())
            .with_named("fc", Linear::new(64, 10, true, seed.wrapping_add(40))),
    )
}
