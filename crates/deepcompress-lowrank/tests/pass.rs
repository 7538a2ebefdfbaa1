//! The LowRank pass: budgets met, layers really replaced, bad input refused with the model
//! unchanged.

use deepcompress_core::data::{Dataset, Mnist};
use deepcompress_core::layer::{Conv2d, Conv2dConfig, Linear, Relu, Sequential};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::models::{lenet_300_100, lenet5};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_lowrank::LowRank;
use deepcompress_lowrank::rank::{Budget, Rank};
use ndarray::ArrayD;

fn calibration(n: usize) -> Dataset {
    Mnist::embedded().unwrap().train.take(n)
}

fn outputs(model: &mut Model, x: &ArrayD<f32>) -> ArrayD<f32> {
    model.predict(x, 64).unwrap()
}

#[test]
fn global_budget_is_met_and_layers_become_pairs() {
    let calib = calibration(128);
    for budget in [Budget::ParamFraction(0.3), Budget::Params(50_000), Budget::Bytes(400_000)] {
        let mut model = lenet_300_100(1);
        let pass = LowRank::global(Selector::all(), budget);
        pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).unwrap();
        let limit = match budget {
            Budget::ParamFraction(f) => (f * 266_610.0) as usize,
            Budget::Params(p) => p as usize,
            Budget::Bytes(b) => b as usize / 4,
            Budget::MacFraction(_) => unreachable!(),
        };
        assert!(model.num_params() <= limit, "{budget:?}: {}", model.num_params());
        assert!(model.layer_as::<Linear>("fc1.0").is_ok());
    }
}

#[test]
fn mac_budget_factors_convolutions() {
    let calib = calibration(64);
    let mut model = lenet5(0);
    let before = model.summary(&[1, 1, 28, 28]).unwrap().total().macs;
    let pass = LowRank::global(Selector::all(), Budget::MacFraction(0.3));
    pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).unwrap();
    let after = model.summary(&[1, 1, 28, 28]).unwrap().total().macs;
    // Pooling and activations cost no MACs in the summary, so the whole model meets it.
    assert!(after as f64 <= 0.3 * before as f64 + 1.0, "{after} of {before}");
    assert!(model.layer_as::<Conv2d>("conv2.1").is_ok());
    // Without calibration data there is no input shape to count MACs with.
    let err = pass.apply(&mut lenet5(0), &mut PassContext::new(0)).unwrap_err();
    assert!(err.to_string().contains("input shape"), "{err}");
}

#[test]
fn full_rank_factorisation_keeps_the_outputs() {
    // A 6 -> 5 -> 4 MLP at full rank: factoring changes nothing but the layer count.
    let mut model = Model::new(
        Sequential::new()
            .with_named("fc1", Linear::new(6, 5, true, 0))
            .with_named("act", Relu::default())
            .with_named("fc2", Linear::new(5, 4, true, 1)),
    );
    let x = ArrayD::from_shape_fn(vec![7, 6], |i| (i[0] as f32 - 3.0) * 0.3 + i[1] as f32 * 0.1);
    let want = outputs(&mut model, &x);
    let plan = LowRank::new(Selector::path("fc1"), Rank::Fixed(5))
        .plan(&mut model, &PassContext::new(0))
        .unwrap();
    // 5 x (6 + 5) = 55 weights is not fewer than 30: the layer stays dense.
    assert_eq!(plan.rows[0].rank, None);
    let mut wide = Model::new(Sequential::new().with_named("fc", Linear::new(40, 30, true, 0)));
    let x = ArrayD::from_shape_fn(vec![3, 40], |i| ((i[0] * 7 + i[1]) % 5) as f32 - 2.0);
    let want_wide = outputs(&mut wide, &x);
    LowRank::new(Selector::all(), Rank::Energy(1.0))
        .apply(&mut wide, &mut PassContext::new(0))
        .unwrap_or_else(|e| panic!("{e}"));
    let got = outputs(&mut wide, &x);
    assert!((&got - &want_wide).iter().all(|d| d.abs() < 1e-3));
    assert_eq!(want.shape(), &[7, 4]);
}

#[test]
fn data_aware_runs_on_convolutions_and_compensates_in_order() {
    let calib = calibration(96);
    let mut model = lenet5(2);
    let pass = LowRank::new(Selector::all(), Rank::ParamFraction(0.5)).data_aware(96);
    let report = pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).unwrap();
    assert!(report.layers.contains(&"conv2".to_string()), "{:?}", report.notes);
    assert!(model.layer_as::<Conv2d>("conv2.0").is_ok());
    let y = model.predict(&calib.inputs, 48).unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
}

/// Every refusal names what is wrong, and the model is as it was.
#[test]
fn bad_input_is_refused_and_the_model_is_unchanged() {
    let calib = calibration(32);
    let mut nan = lenet_300_100(0);
    if let Ok(slot) = nan.layer_mut("fc2") {
        let fc = slot.as_any_mut().downcast_mut::<Linear>().unwrap();
        fc.weight.value_mut()[[3, 4]] = f32::NAN;
    }
    let cases: Vec<(LowRank, Model, &str)> = vec![
        (LowRank::new(Selector::all(), Rank::Fixed(0)), lenet_300_100(0), "rank"),
        (LowRank::new(Selector::all(), Rank::Fixed(11)), lenet_300_100(0), "fc3"),
        (LowRank::new(Selector::all(), Rank::Energy(0.0)), lenet_300_100(0), "energy"),
        (LowRank::new(Selector::path("relu*"), Rank::Fixed(2)), lenet_300_100(0), "selector"),
        (LowRank::new(Selector::all(), Rank::Fixed(4)), nan, "non-finite"),
        (LowRank::global(Selector::all(), Budget::Params(10)), lenet_300_100(0), "budget"),
        (
            LowRank::global(Selector::all(), Budget::ParamFraction(1.5)),
            lenet_300_100(0),
            "fraction",
        ),
        (LowRank::new(Selector::all(), Rank::Fixed(2)).data_aware(0), lenet_300_100(0), "samples"),
    ];
    for (pass, mut model, needle) in cases {
        let before = format!("{model:?}");
        let err = pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib));
        let msg = err.expect_err(needle).to_string();
        assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
        assert_eq!(format!("{model:?}"), before, "{needle}: model changed");
    }
    // Data-aware without calibration data.
    let mut model = lenet_300_100(0);
    let err = LowRank::new(Selector::all(), Rank::Fixed(2))
        .data_aware(16)
        .apply(&mut model, &mut PassContext::new(0));
    assert!(err.unwrap_err().to_string().contains("calibration"));
    // Grouped convolutions are refused by name.
    let mut grouped = Model::new(
        Sequential::new()
            .with_named("dw", Conv2d::new(Conv2dConfig::new(4, 4, 3).groups(4), 0).unwrap()),
    );
    let err = LowRank::new(Selector::all(), Rank::Fixed(1)).validate(&grouped).unwrap_err();
    assert!(err.to_string().contains("dw") && err.to_string().contains("groups = 4"), "{err}");
    assert!(
        LowRank::new(Selector::all(), Rank::Fixed(1))
            .apply(&mut grouped, &mut PassContext::new(0))
            .is_err()
    );
}

#[test]
fn every_conv_method_runs_as_a_pass() {
    use deepcompress_lowrank::{ConvMethod, ConvRanks, DecomposeConv};
    let calib = calibration(16);
    for (method, ranks, layers) in [
        (ConvMethod::Separable, ConvRanks::ParamFraction(0.3), 2),
        (ConvMethod::Tucker2, ConvRanks::Vbmf, 3),
        (ConvMethod::Tucker2, ConvRanks::ParamFraction(0.3), 3),
        (ConvMethod::Cp, ConvRanks::Fixed(8), 4),
    ] {
        let mut model = lenet5(0);
        let pass = DecomposeConv::new(Selector::path("conv2"), method, ranks).max_iters(200);
        let mut ctx = PassContext::new(0);
        let report = match pass.apply(&mut model, &mut ctx) {
            Ok(r) => r,
            // CP-ALS may legitimately stop unconverged on a random kernel; it must say so.
            Err(e) if method == ConvMethod::Cp => {
                assert!(e.to_string().contains("did not converge"), "{e}");
                continue;
            }
            Err(e) => panic!("{method:?}: {e}"),
        };
        assert_eq!(report.layers, vec!["conv2"], "{method:?}: {:?}", report.notes);
        assert!(model.layer(&format!("conv2.{}", layers - 1)).is_ok());
        if matches!(ranks, ConvRanks::ParamFraction(_)) {
            let p: usize = model
                .layer("conv2")
                .unwrap()
                .children()
                .iter()
                .flat_map(|(_, l)| l.params())
                .map(|(_, p)| p.len())
                .sum();
            assert!(p as f64 <= 0.3 * 25_000.0 + 50.0, "{method:?}: {p}");
        }
        let y = model.predict(&calib.inputs, 16).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn conv_pass_refuses_bad_input_without_changing_the_model() {
    use deepcompress_lowrank::{ConvMethod, ConvRanks, DecomposeConv};
    let cases = [
        (DecomposeConv::new(Selector::all(), ConvMethod::Separable, ConvRanks::Vbmf), "Tucker-2"),
        (DecomposeConv::new(Selector::all(), ConvMethod::Cp, ConvRanks::Tucker(2, 2)), "Tucker-2"),
        (
            DecomposeConv::new(Selector::path("fc1"), ConvMethod::Tucker2, ConvRanks::Fixed(2)),
            "Conv2d",
        ),
        (DecomposeConv::new(Selector::all(), ConvMethod::Tucker2, ConvRanks::Fixed(0)), "rank"),
        (DecomposeConv::new(Selector::all(), ConvMethod::Separable, ConvRanks::Fixed(500)), "conv"),
        (
            DecomposeConv::new(Selector::all(), ConvMethod::Cp, ConvRanks::Fixed(6)).max_iters(1),
            "converge",
        ),
    ];
    for (pass, needle) in cases {
        let mut model = lenet5(0);
        let before = format!("{model:?}");
        let msg = pass.apply(&mut model, &mut PassContext::new(0)).expect_err(needle).to_string();
        assert!(msg.contains(needle), "`{msg}` should mention `{needle}`");
        assert_eq!(format!("{model:?}"), before);
    }
    let grouped = Model::new(
        Sequential::new()
            .with_named("dw", Conv2d::new(Conv2dConfig::new(4, 4, 3).groups(4), 0).unwrap()),
    );
    let pass = DecomposeConv::new(Selector::all(), ConvMethod::Tucker2, ConvRanks::Fixed(1));
    assert!(pass.validate(&grouped).unwrap_err().to_string().contains("groups = 4"));
}

/// With a randomized SVD the reported error is still the error of the factors produced.
#[test]
fn randomized_factors_report_their_exact_error() {
    use deepcompress_lowrank::svd::RandomizedSvd;
    let mut model = lenet_300_100(3);
    let w = model.layer_as::<Linear>("fc1").unwrap().weight.value().clone();
    let pass =
        LowRank::new(Selector::path("fc1"), Rank::Fixed(24)).randomized(RandomizedSvd::default());
    let plan = pass.plan(&mut model, &PassContext::new(0)).unwrap();
    pass.apply(&mut model, &mut PassContext::new(0)).unwrap();
    let b = model.layer_as::<Linear>("fc1.0").unwrap().weight.value().clone();
    let a = model.layer_as::<Linear>("fc1.1").unwrap().weight.value().clone();
    let a = a.into_dimensionality::<ndarray::Ix2>().unwrap();
    let b = b.into_dimensionality::<ndarray::Ix2>().unwrap();
    let w = w.into_dimensionality::<ndarray::Ix2>().unwrap();
    let diff = (&w - &a.dot(&b)).mapv(|v| (v as f64).powi(2)).sum().sqrt();
    let norm = w.mapv(|v| (v as f64).powi(2)).sum().sqrt();
    let reported = plan.rows[0].relative_error;
    assert!((diff / norm - reported).abs() < 1e-4, "{} vs {reported}", diff / norm);
}

/// Tucker-2 convolutions compete with the Linear layers' singular components for one
/// MAC budget; the budget holds for the model as built.
#[test]
fn global_budget_with_tucker_convolutions() {
    let calib = calibration(64);
    let mut model = lenet5(0);
    let before = model.summary(&[1, 1, 28, 28]).unwrap().total().macs;
    let pass =
        LowRank::global(Selector::all(), Budget::MacFraction(0.3)).tucker_convs().data_aware(64);
    let report = pass.apply(&mut model, &mut PassContext::new(0).with_calibration(&calib)).unwrap();
    let after = model.summary(&[1, 1, 28, 28]).unwrap().total().macs;
    assert!(after as f64 <= 0.3 * before as f64 + 1.0, "{after} of {before}: {:?}", report.notes);
    assert!(report.notes.iter().any(|n| n.starts_with("conv2: Tucker-2")), "{:?}", report.notes);
    assert!(model.layer("conv2.2").is_ok());
    let y = model.predict(&calib.inputs, 32).unwrap();
    assert!(y.iter().all(|v| v.is_finite()));
    // Tucker-2 through LowRank needs a global budget.
    let err = LowRank::new(Selector::all(), Rank::Fixed(2))
        .tucker_convs()
        .validate(&lenet5(0))
        .unwrap_err();
    assert!(err.to_string().contains("DecomposeConv"), "{err}");
}
