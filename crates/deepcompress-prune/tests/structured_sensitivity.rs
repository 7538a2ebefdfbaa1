//! Structured sensitivity on the residual CNN: coupled channels form one curve, the
//! allocation meets a MAC budget, and the pruned model has exactly the allocated MACs.

use deepcompress_core::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress_core::model::Selector;
use deepcompress_core::models::resnet_small;
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_core::train::{Adam, LrSchedule, TrainConfig, Trainer, evaluate};
use deepcompress_prune::sensitivity::{Budget, StructuredSensitivity};
use deepcompress_prune::structured::Criterion;
use std::time::Instant;

const INPUT: [usize; 4] = [1, 1, 28, 28];

#[test]
fn resnet_small_structured_sensitivity_and_mac_allocation() {
    let t0 = Instant::now();
    let raw = Mnist::embedded().unwrap();
    let train = raw.train.take(1500).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let val = raw.test.take(200).normalize(MNIST_MEAN, MNIST_STD).unwrap();
    let mut model = resnet_small(0);
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 32,
        lr: 2e-3,
        schedule: LrSchedule::Cosine { min_lr: 0.0 },
        seed: 3,
        ..TrainConfig::default()
    };
    Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();
    eprintln!("trained in {:.1} s", t0.elapsed().as_secs_f64());

    let t1 = Instant::now();
    let analysis = StructuredSensitivity::new(Selector::kinds(&["Conv2d"]), Criterion::L1, &INPUT)
        .fractions(vec![0.0, 0.25, 0.5, 0.75]);
    let curves = analysis.run(&model, &val).unwrap();
    eprintln!("analysed in {:.1} s\n{}", t1.elapsed().as_secs_f64(), curves.to_markdown());
    let sens = &curves.sensitivity;
    assert!(sens.baseline > 0.7, "baseline {}", sens.baseline);

    // One curve per prunable group; the residual stream of layer1 (stem conv1 and the
    // block body's conv2 add into the same 16 channels) is ONE curve, not two.
    assert_eq!(sens.curves.len(), 6);
    let stream: Vec<_> =
        sens.curves.iter().filter(|c| c.layers.iter().any(|l| l == "conv1")).collect();
    assert_eq!(stream.len(), 1);
    assert_eq!(stream[0].layers, ["conv1", "layer1.block.body.conv2"]);
    for l in ["layer1.block.body.conv2", "layer2.block.body.conv2", "layer2.block.shortcut.conv"] {
        assert_eq!(sens.curves.iter().filter(|c| c.layers.iter().any(|x| x == l)).count(), 1);
    }
    // layer2's output: its body conv2 and its projection shortcut.
    assert!(sens.curves.iter().any(|c| c.layers.len() == 2
        && c.layers.contains(&"layer2.block.body.conv2".to_string())
        && c.layers.contains(&"layer2.block.shortcut.conv".to_string())));
    // Every curve: 0, 1/4, 1/2, 3/4 of its channels; the first point is the dense model.
    for (c, &w) in sens.curves.iter().zip(&curves.channels) {
        assert_eq!(c.points.len(), 4, "{:?}", c.layers);
        assert_eq!(c.points[0], (0.0, sens.baseline));
        assert_eq!(c.points[2].0 * w as f64, (w / 2) as f64);
    }
    // The weights field is a MAC share, and the shares add up to the analysed MACs.
    let shares: u64 = sens.curves.iter().map(|c| c.weights as u64).sum();
    assert_eq!(shares, curves.analysed_macs);
    let total = model.summary(&INPUT).unwrap().total().macs;
    assert_eq!(curves.total_macs, total);
    assert!(curves.analysed_macs <= total && curves.analysed_macs * 10 > total * 9);

    // Allocate for half the analysed MACs: the exact MAC model meets the budget.
    let alloc = curves.allocate(Budget::KeepFraction(0.5)).unwrap();
    eprintln!("allocation {:?}", alloc);
    assert!(alloc.kept_fraction <= 0.5 && alloc.kept_fraction > 0.35, "{}", alloc.kept_fraction);
    // Both producers of a group get the same fraction.
    assert_eq!(alloc.sparsity["conv1"], alloc.sparsity["layer1.block.body.conv2"]);
    // The fractions differ between groups (sensitivity, not a uniform cut).
    let distinct: std::collections::BTreeSet<u64> =
        alloc.sparsity.values().map(|f| f.to_bits()).collect();
    assert!(distinct.len() > 1, "{:?}", alloc.sparsity);

    // Prune as allocated: MACs drop exactly as predicted.
    let predicted = curves.macs_after(&alloc).unwrap();
    let removed = curves.analysed_macs as f64 * (1.0 - alloc.kept_fraction);
    assert_eq!(predicted, total - removed.round() as u64);
    let mut pruned = model.clone();
    let report = curves.pass(&alloc).apply(&mut pruned, &mut PassContext::new(0)).unwrap();
    assert!(!report.layers.is_empty());
    let after = pruned.summary(&INPUT).unwrap().total().macs;
    assert_eq!(after, predicted);
    let kept_analysed = curves.analysed_macs - (total - after);
    assert!(
        kept_analysed * 2 <= curves.analysed_macs,
        "{kept_analysed} of {}",
        curves.analysed_macs
    );
    let acc = evaluate(&mut pruned, &val, 500).unwrap().accuracy;
    eprintln!(
        "MACs {total} -> {after}; accuracy {} -> {acc} (predicted drop {}); {:.1} s in all",
        sens.baseline,
        alloc.predicted_drop,
        t0.elapsed().as_secs_f64()
    );
    // The analysed model itself is untouched.
    assert_eq!(model.summary(&INPUT).unwrap().total().macs, total);
}
