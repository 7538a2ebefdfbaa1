//! Training: determinism, constraints through optimizer steps, schedules, early stopping,
//! and a small real MNIST run.

use deepcompress_core::Model;
use deepcompress_core::data::{Dataset, Mnist};
use deepcompress_core::models::{lenet_300_100, mlp};
use deepcompress_core::param::Constraint;
use deepcompress_core::train::{
    Adam, EarlyStopping, LrSchedule, Optimizer, Sgd, TrainConfig, Trainer, evaluate,
};
use ndarray::ArrayD;

fn weights(m: &Model) -> Vec<f32> {
    let mut v = Vec::new();
    m.for_each_param(|_, p| v.extend(p.value().iter().copied()));
    v
}

fn small_mnist(n: usize) -> (Dataset, Dataset) {
    let mnist = Mnist::embedded().unwrap();
    (mnist.train.take(n), mnist.test.take(500))
}

#[test]
fn same_seed_same_bits() {
    let (train, _) = small_mnist(600);
    let cfg = TrainConfig { epochs: 2, batch_size: 64, seed: 3, ..TrainConfig::default() };
    let run = || {
        let mut m = lenet_300_100(5);
        Trainer::new(cfg.clone()).fit(&mut m, &mut Adam::default(), &train, None, |_| {}).unwrap();
        weights(&m)
    };
    let (a, b) = (run(), run());
    assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    // A different shuffling seed gives different weights.
    let mut m = lenet_300_100(5);
    let cfg2 = TrainConfig { seed: 4, ..cfg };
    Trainer::new(cfg2).fit(&mut m, &mut Adam::default(), &train, None, |_| {}).unwrap();
    assert_ne!(weights(&m), a);
}

/// Keeps the first half of the weights at zero, like a pruning mask.
#[derive(Debug, Clone)]
struct HalfMask;
impl Constraint for HalfMask {
    fn name(&self) -> &'static str {
        "half-mask"
    }
    fn adjust_grad(&self, grad: &mut ArrayD<f32>) {
        let n = grad.len() / 2;
        grad.as_slice_mut().unwrap()[..n].fill(0.0);
    }
    fn project(&mut self, value: &mut ArrayD<f32>) {
        let n = value.len() / 2;
        value.as_slice_mut().unwrap()[..n].fill(0.0);
    }
    fn clone_box(&self) -> Box<dyn Constraint> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn constraints_survive_every_optimizer() {
    let (train, _) = small_mnist(300);
    let optimizers: Vec<Box<dyn Optimizer>> = vec![
        Box::new(Sgd::new(0.9).unwrap().nesterov(true).weight_decay(1e-3).unwrap()),
        Box::new(Adam::default().weight_decay(1e-2).unwrap().decoupled(true)),
        Box::new(Adam::default()),
    ];
    for mut opt in optimizers {
        let mut m = lenet_300_100(1);
        m.for_each_param_mut(|name, p| {
            if name.ends_with("weight") {
                p.set_constraint(Box::new(HalfMask));
            }
        });
        let cfg = TrainConfig { epochs: 1, batch_size: 50, lr: 1e-2, ..TrainConfig::default() };
        Trainer::new(cfg).fit(&mut m, opt.as_mut(), &train, None, |_| {}).unwrap();
        m.for_each_param(|name, p| {
            if name.ends_with("weight") {
                let n = p.len() / 2;
                assert!(p.value().iter().take(n).all(|&v| v == 0.0), "{name} lost its mask");
                assert!(p.value().iter().skip(n).any(|&v| v != 0.0));
            }
        });
    }
}

#[test]
fn sgd_and_adam_learn_mnist_subset() {
    let (train, test) = small_mnist(2000);
    for (name, mut opt, lr) in [
        ("sgd", Box::new(Sgd::new(0.9).unwrap()) as Box<dyn Optimizer>, 0.05),
        ("adam", Box::new(Adam::default()) as Box<dyn Optimizer>, 1e-3),
    ] {
        let mut m = mlp(&[784, 100, 10], 0).unwrap();
        let cfg = TrainConfig {
            epochs: 4,
            batch_size: 64,
            lr,
            schedule: LrSchedule::Cosine { min_lr: 0.0 },
            ..TrainConfig::default()
        };
        let h = Trainer::new(cfg).fit(&mut m, opt.as_mut(), &train, Some(&test), |_| {}).unwrap();
        let first = h.epochs[0].train_loss;
        let last = h.epochs.last().unwrap().train_loss;
        assert!(last < first * 0.6, "{name}: loss {first} -> {last}");
        let acc = evaluate(&mut m, &test, 250).unwrap().accuracy;
        assert!(acc > 0.85, "{name}: accuracy {acc}");
    }
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    let (train, test) = small_mnist(500);
    let mut m = mlp(&[784, 32, 10], 0).unwrap();
    // A learning rate far too high makes validation accuracy stall or fall quickly.
    let cfg = TrainConfig {
        epochs: 30,
        batch_size: 50,
        lr: 0.5,
        early_stopping: Some(EarlyStopping { patience: 2, min_delta: 0.0 }),
        ..TrainConfig::default()
    };
    let h = Trainer::new(cfg)
        .fit(&mut m, &mut Sgd::new(0.9).unwrap(), &train, Some(&test), |_| {})
        .unwrap();
    assert!(h.stopped_early && h.epochs.len() < 30);
    let best = h.epochs.iter().map(|e| e.val.unwrap().accuracy).fold(0.0f32, f32::max);
    let now = evaluate(&mut m, &test, 500).unwrap().accuracy;
    assert_eq!(now, best);
}

#[test]
fn bad_training_configs_are_errors() {
    let (train, _) = small_mnist(100);
    let mut m = lenet_300_100(0);
    let before = weights(&m);
    for cfg in [
        TrainConfig { epochs: 0, ..TrainConfig::default() },
        TrainConfig { lr: f32::NAN, ..TrainConfig::default() },
        TrainConfig {
            schedule: LrSchedule::Step { every: 0, gamma: 0.1 },
            ..TrainConfig::default()
        },
        TrainConfig {
            early_stopping: Some(EarlyStopping { patience: 1, min_delta: 0.0 }),
            ..TrainConfig::default()
        },
    ] {
        assert!(Trainer::new(cfg).fit(&mut m, &mut Adam::default(), &train, None, |_| {}).is_err());
    }
    assert_eq!(weights(&m), before, "a refused run leaves the model unchanged");
}

#[test]
fn same_bits_whatever_the_thread_count() {
    let (train, _) = small_mnist(400);
    let cfg = TrainConfig { epochs: 1, batch_size: 64, seed: 9, ..TrainConfig::default() };
    let run = |threads: Option<usize>| {
        let go = || {
            let mut m = lenet_300_100(2);
            Trainer::new(cfg.clone())
                .fit(&mut m, &mut Adam::default(), &train, None, |_| {})
                .unwrap();
            weights(&m)
        };
        match threads {
            Some(t) => rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap().install(go),
            None => go(),
        }
    };
    let global = run(None);
    for t in [1, 2, 3] {
        let w = run(Some(t));
        assert!(
            w.iter().zip(&global).all(|(a, b)| a.to_bits() == b.to_bits()),
            "{t} threads differ"
        );
    }
}
