//! Unit and property tests of structured pruning.

use super::*;
use crate::PruneError;
use deepcompress_core::layer::{
    BatchNorm, Conv2d, Conv2dConfig, Layer, Linear, Mode, Relu, Residual, Sequential, Softmax,
};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::models::{lenet_300_100, lenet5, resnet_small};
use deepcompress_core::pass::{Pass, PassContext};
use ndarray::{Array, Array2, Array4, ArrayD, Axis};
use proptest::prelude::*;

const MNIST: [usize; 4] = [1, 1, 28, 28];

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    // A small LCG: deterministic, no extra dependency.
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    Array::from_shape_fn(shape.to_vec(), |_| {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

fn macs(m: &Model, input: &[usize]) -> u64 {
    m.summary(input).unwrap().total().macs
}

fn state(m: &Model) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut v = Vec::new();
    m.for_each_param(|n, p| {
        v.push((n.to_string(), p.value().shape().to_vec(), p.value().iter().copied().collect()))
    });
    v
}

#[test]
fn fpgm_ranks_the_median_filter_lowest() {
    // Filters at 0, 1, 2, 3 and 10 on a line: the one at 2 is the geometric median.
    let w = Array2::from_shape_vec((5, 1), vec![0.0f32, 1.0, 2.0, 3.0, 10.0]).unwrap();
    let fc = Linear::from_weights(w, None).unwrap();
    let s = Criterion::Fpgm.weight_scores(&fc, "fc").unwrap();
    assert_eq!(s, vec![16.0, 13.0, 12.0, 13.0, 34.0]);
}

#[test]
fn weight_scores_refuse_nan_and_other_layers() {
    let mut fc = Linear::new(2, 2, false, 0);
    fc.weight.value_mut()[[0, 1]] = f32::NAN;
    assert!(matches!(Criterion::L1.weight_scores(&fc, "fc"), Err(PruneError::NonFinite { .. })));
    let bn = BatchNorm::new_2d(2);
    assert!(matches!(Criterion::L2.weight_scores(&bn, "bn"), Err(PruneError::Unsupported { .. })));
    assert!(Criterion::BnScale.weight_scores(&Linear::new(2, 2, false, 0), "fc").is_err());
}

#[test]
fn slimming_penalty_follows_the_sign_of_gamma() {
    let mut m = resnet_small(0);
    {
        let bn = m.layer_mut("bn1").unwrap().as_any_mut().downcast_mut::<BatchNorm>().unwrap();
        bn.weight.value_mut()[[0]] = -0.5;
        bn.weight.value_mut()[[1]] = 0.0;
    }
    slimming_penalty(&mut m, 0.01).unwrap();
    let bn = m.layer_as::<BatchNorm>("bn1").unwrap();
    assert_eq!(bn.weight.grad()[[0]], -0.01);
    assert_eq!(bn.weight.grad()[[1]], 0.0);
    assert_eq!(bn.weight.grad()[[2]], 0.01);
    assert!(slimming_penalty(&mut m, f32::NAN).is_err());
}

#[test]
fn resnet_groups_couple_residual_adds() {
    let m = resnet_small(0);
    let g = ChannelGroups::analyze(&m, &MNIST).unwrap();
    let stem = g.group_of("conv1").unwrap();
    let paths: Vec<&str> = stem.members.iter().map(|m| m.path.as_str()).collect();
    for p in [
        "bn1",
        "layer1.block.body.conv1",
        "layer1.block.body.bn2",
        "layer2.block.body.conv1",
        "layer2.block.shortcut.conv",
    ] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    let l2 = g.group_of("layer2.block.body.conv2").unwrap();
    assert!(l2.producers().any(|p| p == "layer2.block.shortcut.conv"));
    assert_eq!(l2.channels, 32);
    let l3 = g.group_of("layer3.block.body.conv2").unwrap();
    assert!(l3.members.iter().any(|m| m.path == "fc" && m.role == Role::Consumer { factor: 1 }));
    let inner = g.group_of("layer1.block.body.conv1").unwrap();
    assert_eq!(inner.producers().count(), 1);
    assert_eq!(g.group_of("fc").unwrap().blocked, vec![Blocked::ModelOutput]);
    assert_eq!(g.groups()[0].blocked, vec![Blocked::ModelInput]);
}

#[test]
fn mac_model_matches_the_summary() {
    for (m, input) in [
        (resnet_small(0), MNIST.to_vec()),
        (lenet5(0), MNIST.to_vec()),
        (lenet_300_100(0), vec![3, 784]),
        (resnet_small(1), vec![2, 1, 20, 20]),
    ] {
        let g = ChannelGroups::analyze(&m, &input).unwrap();
        assert_eq!(g.macs(&g.widths()), macs(&m, &input));
    }
}

#[test]
fn grouped_conv_is_refused_and_depthwise_is_pruned() {
    let grouped = Model::new(
        Sequential::new()
            .with_named("a", Conv2d::new(Conv2dConfig::new(1, 4, 3), 0).unwrap())
            .with_named("g", Conv2d::new(Conv2dConfig::new(4, 4, 3).groups(2), 1).unwrap())
            .with_named("b", Conv2d::new(Conv2dConfig::new(4, 2, 1), 2).unwrap()),
    );
    let pass = StructuredPrune::new(
        Selector::path("a"),
        Criterion::L1,
        Target::GroupFraction(0.5),
        &[1, 1, 8, 8],
    );
    let before = state(&grouped);
    let mut m = grouped.clone();
    let err = pass.plan(&m).unwrap_err();
    assert!(matches!(&err, PruneError::Unsupported { path, .. } if path == "g"), "{err}");
    assert!(err.to_string().contains("2 groups"), "{err}");
    assert!(pass.apply(&mut m, &mut PassContext::new(0)).is_err());
    assert_eq!(state(&m), before);

    let mut dw = Model::new(
        Sequential::new()
            .with_named("a", Conv2d::new(Conv2dConfig::new(1, 4, 3), 0).unwrap())
            .with_named("bn", BatchNorm::new_2d(4))
            .with_named("dw", Conv2d::new(Conv2dConfig::new(4, 4, 3).groups(4), 1).unwrap())
            .with_named("b", Conv2d::new(Conv2dConfig::new(4, 2, 1), 2).unwrap()),
    );
    let m0 = macs(&dw, &[1, 1, 8, 8]);
    pass.apply(&mut dw, &mut PassContext::new(0)).unwrap();
    let c = dw.layer_as::<Conv2d>("dw").unwrap().config;
    assert_eq!((c.in_channels, c.out_channels, c.groups), (2, 2, 2));
    assert_eq!(dw.layer_as::<Conv2d>("b").unwrap().config.in_channels, 2);
    assert!(macs(&dw, &[1, 1, 8, 8]) < m0);
}

#[test]
fn softmax_blocks_without_error_and_nothing_selected_is_typed() {
    let m = Model::new(
        Sequential::new()
            .with_named("fc1", Linear::new(4, 8, true, 0))
            .with_named("sm", Softmax::default())
            .with_named("fc2", Linear::new(8, 2, true, 1)),
    );
    let pass = StructuredPrune::new(
        Selector::path("fc1"),
        Criterion::L2,
        Target::GroupFraction(0.5),
        &[1, 4],
    );
    assert!(matches!(pass.plan(&m), Err(PruneError::NothingSelected { .. })));
    let none = StructuredPrune::new(
        Selector::path("zz*"),
        Criterion::L2,
        Target::GroupFraction(0.5),
        &[1, 4],
    );
    assert!(matches!(none.plan(&m), Err(PruneError::NothingSelected { .. })));
    let typo = StructuredPrune::new(
        Selector::path("fc9"),
        Criterion::L2,
        Target::GroupFraction(0.5),
        &[1, 4],
    );
    assert!(typo.plan(&m).is_err());
}

#[test]
fn bad_parameters_leave_the_model_unchanged() {
    let m0 = resnet_small(0);
    let mut m = m0.clone();
    let sel = || Selector::kinds(&["Conv2d"]);
    let cases = [
        StructuredPrune::new(sel(), Criterion::L1, Target::GroupFraction(1.0), &MNIST),
        StructuredPrune::new(sel(), Criterion::L1, Target::GroupFraction(-0.1), &MNIST),
        StructuredPrune::new(sel(), Criterion::L1, Target::MacFraction(f64::NAN), &MNIST),
        StructuredPrune::new(sel(), Criterion::L1, Target::GroupFraction(0.5), &MNIST)
            .min_channels(0),
        StructuredPrune::new(sel(), Criterion::L1, Target::GroupFraction(0.5), &[1, 3, 28, 28]),
        StructuredPrune::new(sel(), Criterion::L1, Target::GroupFraction(0.5), &[1]),
        // min_channels 40 leaves too little to remove 90 % of the MACs.
        StructuredPrune::new(sel(), Criterion::L1, Target::MacFraction(0.9), &MNIST)
            .min_channels(40),
        StructuredPrune::new(sel(), Criterion::L1, Target::MacFraction(0.5), &MNIST)
            .max_fraction(0.0),
        StructuredPrune::new(sel(), Criterion::L1, Target::MacFraction(0.5), &MNIST)
            .max_fraction(1.5),
        // At most 10 % of each group cannot remove half of the MACs.
        StructuredPrune::new(sel(), Criterion::L1, Target::MacFraction(0.5), &MNIST)
            .max_fraction(0.1),
    ];
    for pass in cases {
        assert!(pass.validate(&m).is_err(), "{pass:?}");
        assert!(pass.apply(&mut m, &mut PassContext::new(0)).is_err(), "{pass:?}");
        assert_eq!(state(&m), state(&m0));
    }
    let err = StructuredPrune::new(sel(), Criterion::L1, Target::GroupFraction(1.5), &MNIST)
        .plan(&m)
        .unwrap_err();
    assert!(err.to_string().contains("1.5"), "{err}");
}

#[test]
fn group_fraction_respects_min_channels() {
    let mut m = resnet_small(0);
    let pass = StructuredPrune::new(
        Selector::kinds(&["Conv2d"]),
        Criterion::L2,
        Target::GroupFraction(0.9),
        &MNIST,
    )
    .min_channels(4);
    pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    // 16 channels: 90 % would leave 2, min_channels keeps 4.
    assert_eq!(m.layer_as::<Conv2d>("conv1").unwrap().config.out_channels, 4);
    assert_eq!(m.layer_as::<Conv2d>("layer3.block.body.conv1").unwrap().config.out_channels, 7);
    assert_eq!(m.summary(&MNIST).unwrap().output, vec![1, 10]);
}

#[test]
fn resnet_mac_target_every_criterion() {
    for crit in [Criterion::L1, Criterion::L2, Criterion::Fpgm, Criterion::BnScale] {
        let mut m = resnet_small(3);
        if crit == Criterion::BnScale {
            // Distinct gammas so that the ranking is meaningful.
            m.for_each_param_mut(|n, p| {
                if n.ends_with("bn1.weight")
                    || n.ends_with("bn2.weight")
                    || n.ends_with("bn.weight")
                {
                    let r = random(p.value().shape(), n.len() as u64);
                    *p.value_mut() = r;
                }
            });
        }
        let before = m.summary(&MNIST).unwrap().total();
        let pass = StructuredPrune::new(
            Selector::kinds(&["Conv2d"]),
            crit,
            Target::MacFraction(0.5),
            &MNIST,
        );
        let plan = pass.plan(&m).unwrap();
        let report = pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
        let after = m.summary(&MNIST).unwrap().total();
        assert_eq!(after.macs, plan.macs_after, "{crit:?}");
        assert!(after.macs * 2 <= before.macs, "{crit:?}: {} -> {}", before.macs, after.macs);
        assert!(after.params < before.params);
        assert!(report.notes.iter().any(|n| n.contains("% removed")));
        let y = m.forward(random(&[2, 1, 28, 28], 1), Mode::Eval).unwrap();
        assert_eq!(y.shape(), &[2, 10]);
    }
}

#[test]
fn bn_scale_needs_batchnorm() {
    let pass = StructuredPrune::new(
        Selector::kinds(&["Conv2d"]),
        Criterion::BnScale,
        Target::GroupFraction(0.5),
        &MNIST,
    );
    assert!(matches!(pass.plan(&lenet5(0)), Err(PruneError::Unsupported { .. })));
}

#[test]
fn lenet5_conv2_flatten_fc1() {
    let mut m = lenet5(0);
    let x = random(&[2, 1, 28, 28], 5);
    let pass = StructuredPrune::new(
        Selector::path("conv2"),
        Criterion::L1,
        Target::GroupFraction(0.5),
        &MNIST,
    );
    let plan = pass.plan(&m).unwrap();
    let keep = plan.keep[plan.groups.index_of("conv2").unwrap()].clone().unwrap();
    // Zero the dropped filters: then the pruned model must compute the same function.
    {
        let conv = m.layer_mut("conv2").unwrap().as_any_mut().downcast_mut::<Conv2d>().unwrap();
        for k in 0..50 {
            if !keep.contains(&k) {
                conv.weight.value_mut().index_axis_mut(Axis(0), k).fill(0.0);
                conv.bias.as_mut().unwrap().value_mut()[[k]] = 0.0;
            }
        }
    }
    let y0 = m.forward(x.clone(), Mode::Eval).unwrap();
    pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    assert_eq!(m.layer_as::<Linear>("fc1").unwrap().in_features(), 25 * 16);
    let y1 = m.forward(x, Mode::Eval).unwrap();
    for (a, b) in y0.iter().zip(&y1) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn residual_pruning_preserves_function_of_dead_channels() {
    // Channels whose filters and BN are zero contribute nothing; removing them everywhere
    // in the coupled group must not change the output.
    let mut m = resnet_small(2);
    let groups = ChannelGroups::analyze(&m, &MNIST).unwrap();
    let g = groups.index_of("layer2.block.body.conv2").unwrap();
    let dead = [3usize, 10, 31];
    for p in ["layer2.block.body.bn2", "layer2.block.shortcut.bn"] {
        let bn = m.layer_mut(p).unwrap().as_any_mut().downcast_mut::<BatchNorm>().unwrap();
        for &d in &dead {
            bn.weight.value_mut()[[d]] = 0.0;
            bn.bias.value_mut()[[d]] = 0.0;
        }
    }
    let x = random(&[2, 1, 28, 28], 9);
    let y0 = m.forward(x.clone(), Mode::Eval).unwrap();
    let mut keep = vec![None; groups.groups().len()];
    keep[g] = Some((0..32).filter(|k| !dead.contains(k)).collect::<Vec<_>>());
    let changed = remove_channels(&mut m, &groups, &keep).unwrap();
    assert!(changed.contains(&"layer3.block.shortcut.conv".to_string()));
    let y1 = m.forward(x, Mode::Eval).unwrap();
    for (a, b) in y0.iter().zip(&y1) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
}

#[test]
fn pruned_resnet_round_trips_through_safetensors() {
    let mut m = resnet_small(4);
    let pass = StructuredPrune::new(
        Selector::kinds(&["Conv2d"]),
        Criterion::L1,
        Target::MacFraction(0.5),
        &MNIST,
    );
    let plan = pass.plan(&m).unwrap();
    pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    let path = std::env::temp_dir()
        .join(format!("deepcompress-structured-{}.safetensors", std::process::id()));
    m.save_safetensors(&path).unwrap();
    // A fresh model with the same new shapes: same keep lists on another initialisation.
    let mut fresh = resnet_small(99);
    remove_channels(&mut fresh, &plan.groups, &plan.keep).unwrap();
    assert!(fresh.load_safetensors(&path).unwrap().is_empty());
    std::fs::remove_file(&path).ok();
    assert_eq!(state(&fresh), state(&m));
    let x = random(&[3, 1, 28, 28], 2);
    assert_eq!(fresh.forward(x.clone(), Mode::Eval).unwrap(), m.forward(x, Mode::Eval).unwrap());
    // The unpruned architecture cannot load it.
    let mut dense = resnet_small(0);
    m.save_safetensors(&path).unwrap();
    assert!(dense.load_safetensors(&path).is_err());
    std::fs::remove_file(&path).ok();
}

#[test]
fn remove_channels_validates_keep_lists() {
    let mut m = resnet_small(0);
    let before = state(&m);
    let groups = ChannelGroups::analyze(&m, &MNIST).unwrap();
    let g = groups.index_of("conv1").unwrap();
    for bad in [vec![], vec![2, 1], vec![0, 16], vec![3, 3]] {
        let mut keep = vec![None; groups.groups().len()];
        keep[g] = Some(bad);
        assert!(remove_channels(&mut m, &groups, &keep).is_err());
    }
    let mut keep = vec![None; groups.groups().len()];
    keep[groups.index_of("fc").unwrap()] = Some(vec![0, 1]);
    assert!(matches!(remove_channels(&mut m, &groups, &keep), Err(PruneError::Unsupported { .. })));
    assert!(remove_channels(&mut m, &groups, &[]).is_err());
    assert_eq!(state(&m), before);
}

#[test]
fn residual_identity_with_single_conv_body() {
    // Body conv reads and writes the same group (identity shortcut): both axes shrink.
    let mut m = Model::new(
        Sequential::new()
            .with_named("stem", Conv2d::new(Conv2dConfig::new(1, 6, 3).padding(1), 0).unwrap())
            .with_named("relu", Relu::default())
            .with_named(
                "res",
                Residual::identity(Conv2d::new(Conv2dConfig::new(6, 6, 3).padding(1), 1).unwrap()),
            )
            .with_named("head", Conv2d::new(Conv2dConfig::new(6, 2, 1), 2).unwrap()),
    );
    let pass = StructuredPrune::new(
        Selector::path("stem"),
        Criterion::L1,
        Target::GroupFraction(0.5),
        &[1, 1, 6, 6],
    );
    pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    let c = m.layer_as::<Conv2d>("res.body").unwrap().config;
    assert_eq!((c.in_channels, c.out_channels), (3, 3));
    assert_eq!(m.summary(&[1, 1, 6, 6]).unwrap().output, vec![1, 2, 6, 6]);
}

fn conv_strategy() -> impl Strategy<Value = (Conv2dConfig, u64, Vec<bool>)> {
    (1usize..4, 2usize..7, 1usize..4, 1usize..3, 0usize..2, any::<bool>(), any::<u64>())
        .prop_flat_map(|(cin, cout, k, stride, pad, bias, seed)| {
            let cfg = Conv2dConfig::new(cin, cout, k).stride(stride).padding(pad).bias(bias);
            (Just(cfg), Just(seed), proptest::collection::vec(any::<bool>(), cout))
        })
}

fn keep_of(mask: &[bool]) -> Vec<usize> {
    let k: Vec<usize> = (0..mask.len()).filter(|&i| mask[i]).collect();
    if k.is_empty() { vec![0] } else { k }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn kept_conv_filters_give_identical_outputs((cfg, seed, mask) in conv_strategy(), n in 1usize..3, h in 4usize..9) {
        let mut conv = Conv2d::new(cfg, seed).unwrap();
        let keep = keep_of(&mask);
        let mut small = conv_keep_outputs(&conv, &keep, "conv").unwrap();
        let x: Array4<f32> = random(&[n, cfg.in_channels, h, h], seed).into_dimensionality().unwrap();
        let y = conv.forward(x.clone().into_dyn(), Mode::Eval).unwrap();
        let ys = small.forward(x.into_dyn(), Mode::Eval).unwrap();
        prop_assert_eq!(ys, y.select(Axis(1), &keep));
    }

    #[test]
    fn kept_linear_neurons_give_identical_outputs(i in 1usize..20, mask in proptest::collection::vec(any::<bool>(), 1..24), bias in any::<bool>(), seed in any::<u64>(), n in 1usize..5) {
        let mut fc = Linear::new(i, mask.len(), bias, seed);
        let keep = keep_of(&mask);
        let mut small = linear_keep_outputs(&fc, &keep, "fc").unwrap();
        let x = random(&[n, i], seed ^ 7);
        let y = fc.forward(x.clone(), Mode::Eval).unwrap().select(Axis(1), &keep);
        let ys = small.forward(x, Mode::Eval).unwrap();
        if keep.len() >= 2 {
            prop_assert_eq!(ys, y);
        } else {
            // A single output makes faer use its matrix-vector kernel, which sums in
            // another order: equal up to rounding only.
            for (a, b) in ys.iter().zip(&y) {
                prop_assert!((a - b).abs() <= 1e-6 * (1.0 + b.abs()));
            }
        }
    }

    #[test]
    fn dropping_zero_inputs_keeps_conv_outputs((cfg, seed, _m) in conv_strategy(), mask in proptest::collection::vec(any::<bool>(), 3), h in 4usize..8) {
        // Input channels that are zero contribute nothing: pruning them (and the matching
        // weight slices) gives the same outputs up to rounding.
        let cin = cfg.in_channels;
        let mut conv = Conv2d::new(cfg, seed).unwrap();
        let keep = keep_of(&mask[..cin]);
        let mut x = random(&[2, cin, h, h], seed);
        for c in 0..cin {
            if !keep.contains(&c) {
                x.index_axis_mut(Axis(1), c).fill(0.0);
            }
        }
        let y = conv.forward(x.clone(), Mode::Eval).unwrap();
        let mut small = conv_keep_inputs(&conv, &keep, "conv").unwrap();
        let ys = small.forward(x.select(Axis(1), &keep), Mode::Eval).unwrap();
        for (a, b) in y.iter().zip(&ys) {
            prop_assert!((a - b).abs() < 1e-5);
        }
    }
}

#[test]
fn selecting_everything_skips_the_output_layer_with_a_note() {
    let mut m = resnet_small(0);
    let pass =
        StructuredPrune::new(Selector::all(), Criterion::L2, Target::GroupFraction(0.25), &MNIST);
    let report = pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    assert!(
        report.notes.iter().any(|n| n == "skipped `fc`: its channels are the model output"),
        "{:?}",
        report.notes
    );
    assert_eq!(m.layer_as::<Linear>("fc").unwrap().in_features(), 48);
    assert_eq!(m.layer_as::<BatchNorm>("layer2.block.shortcut.bn").unwrap().channels(), 24);
}

#[test]
fn mlp_neurons_under_a_mac_target() {
    let mut m = lenet_300_100(0);
    let input = [1, 784];
    let before = macs(&m, &input);
    let pass = StructuredPrune::new(
        Selector::kinds(&["Linear"]),
        Criterion::Fpgm,
        Target::MacFraction(0.3),
        &input,
    );
    let report = pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    let after = macs(&m, &input);
    assert!(after as f64 <= 0.7 * before as f64, "{before} -> {after}");
    let fc1 = m.layer_as::<Linear>("fc1").unwrap();
    let fc2 = m.layer_as::<Linear>("fc2").unwrap();
    assert_eq!(fc1.out_features(), fc2.in_features());
    assert_eq!(m.layer_as::<Linear>("fc3").unwrap().out_features(), 10);
    assert!(report.notes.iter().any(|n| n.contains("skipped `fc3`")));
    // Same input, same plan: the pass is deterministic.
    let mut again = lenet_300_100(0);
    pass.apply(&mut again, &mut PassContext::new(0)).unwrap();
    assert_eq!(state(&again), state(&m));
}

#[test]
fn per_group_target_prunes_only_the_listed_groups() {
    let mut m = resnet_small(0);
    let per = |pairs: &[(&str, f64)]| {
        Target::PerGroup(pairs.iter().map(|&(p, f)| (p.to_string(), f)).collect())
    };
    // Both producers of the stem stream agree; layer3's inner conv by 3/64 exactly.
    let target = per(&[
        ("conv1", 0.25),
        ("layer1.block.body.conv2", 0.25),
        ("layer3.block.body.conv1", 3.0 / 64.0),
    ]);
    let pass = StructuredPrune::new(Selector::kinds(&["Conv2d"]), Criterion::L2, target, &MNIST);
    let plan = pass.plan(&m).unwrap();
    let touched: Vec<usize> = plan
        .keep
        .iter()
        .enumerate()
        .filter_map(|(g, k)| k.as_ref().map(|k| plan.groups.groups()[g].channels - k.len()))
        .collect();
    assert_eq!(touched, vec![4, 3]);
    pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
    assert_eq!(macs(&m, &MNIST), plan.macs_after);
    let s = m.summary(&MNIST).unwrap();
    let out = |path: &str| s.rows.iter().find(|r| r.path == path).unwrap().output[1];
    assert_eq!(out("conv1"), 12);
    assert_eq!(out("layer1.block.body.conv1"), 16);
    assert_eq!(out("layer3.block.body.conv1"), 61);
}

#[test]
fn per_group_target_refuses_bad_maps_and_leaves_the_model_unchanged() {
    let m0 = resnet_small(0);
    let mut m = m0.clone();
    let per = |pairs: &[(&str, f64)]| {
        Target::PerGroup(pairs.iter().map(|&(p, f)| (p.to_string(), f)).collect())
    };
    let sel = || Selector::kinds(&["Conv2d"]);
    let cases = [
        per(&[]),
        per(&[("conv1", 1.0)]),
        per(&[("conv1", f64::NAN)]),
        per(&[("nope", 0.5)]),
        per(&[("fc", 0.5)]), // writes the logits, and is not selected
        per(&[("layer1.block.body.bn1", 0.5)]), // not a producer
        per(&[("conv1", 0.25), ("layer1.block.body.conv2", 0.5)]), // one group, two fractions
    ];
    for t in cases {
        let pass = StructuredPrune::new(sel(), Criterion::L1, t, &MNIST);
        let err = pass.plan(&m).unwrap_err();
        assert!(matches!(err, PruneError::InvalidParam { .. }), "{err}");
        assert!(pass.apply(&mut m, &mut PassContext::new(0)).is_err());
        assert_eq!(state(&m), state(&m0));
    }
    // A selected group's producer is required: fc's group is blocked even when selected.
    let err = StructuredPrune::new(Selector::all(), Criterion::L1, per(&[("fc", 0.5)]), &MNIST)
        .plan(&m)
        .unwrap_err();
    assert!(err.to_string().contains("model output"), "{err}");
    // Fractions below one channel remove nothing, and the model still validates.
    let tiny = StructuredPrune::new(sel(), Criterion::L1, per(&[("conv1", 0.01)]), &MNIST);
    assert_eq!(tiny.plan(&m).unwrap().macs_after, macs(&m0, &MNIST));
}
