//! Model tree: paths, selectors, replacement, summaries and bad-input errors.

use deepcompress_core::layer::{Conv2d, Conv2dConfig, Linear, Mode};
use deepcompress_core::models::{lenet_300_100, lenet5, resnet_small};
use deepcompress_core::{CoreError, Selector};
use ndarray::ArrayD;

#[test]
fn paths_match_pytorch_state_dict_names() {
    let m = lenet5(0);
    let mut names = Vec::new();
    m.for_each_param(|n, _| names.push(n.to_string()));
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias"
        ]
    );
    let r = resnet_small(0);
    assert!(r.layer("layer2.block.shortcut.conv").is_ok());
    assert!(r.layer("layer1.block.body.bn2").is_ok());
}

#[test]
fn selectors_by_kind_glob_and_exclude() {
    let m = resnet_small(0);
    let convs = m.select(&Selector::kinds(&["Conv2d"])).unwrap();
    assert_eq!(convs.len(), 1 + 2 + 3 + 3);
    let bodies = m.select(&Selector::path("**.body.*").exclude("**.bn*")).unwrap();
    assert_eq!(bodies.len(), 6);
    assert!(bodies.iter().all(|p| p.contains(".body.conv")));
    let all = m.select(&Selector::all()).unwrap();
    assert!(all.contains(&"fc".to_string()) && all.contains(&"bn1".to_string()));
}

#[test]
fn unknown_selector_path_is_an_error() {
    let m = lenet_300_100(0);
    let err = m.select(&Selector::path("fc9")).unwrap_err();
    assert!(matches!(err, CoreError::UnknownPath { ref path, .. } if path == "fc9"), "{err}");
    assert!(err.to_string().contains("fc1"), "the message lists existing layers: {err}");
    assert!(m.layer("").is_err());
    assert!(m.layer("fc1..weight").is_err());
}

#[test]
fn replace_one_layer_by_a_sequence_keeps_outputs_consistent() {
    let mut m = lenet_300_100(0);
    let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |d| ((d[2] * 28 + d[3]) % 7) as f32 / 7.0);
    let before = m.forward(x.clone(), Mode::Eval).unwrap();
    // fc1 = identity(784) followed by the original fc1: same function, new structure.
    let fc1 = m.layer_as::<Linear>("fc1").unwrap().clone();
    let eye = Linear::from_weights(ndarray::Array2::eye(784), None).unwrap();
    m.replace_with_sequence("fc1", vec![Box::new(eye), Box::new(fc1)]).unwrap();
    assert_eq!(m.layer("fc1.1").unwrap().kind(), "Linear");
    let after = m.forward(x, Mode::Eval).unwrap();
    let diff = (&before - &after).mapv(f32::abs).fold(0.0f32, |a, &b| a.max(b));
    assert!(diff < 1e-4, "max difference {diff}");
    assert!(m.replace("nope", Box::new(Linear::new(1, 1, false, 0))).is_err());
}

#[test]
fn summary_counts_params_bytes_and_macs() {
    let s = lenet5(0).summary(&[1, 1, 28, 28]).unwrap();
    let t = s.total();
    assert_eq!(t.params, 431_080);
    assert_eq!(t.storage_bits / 8, 1_724_320);
    assert_eq!(t.macs, 288_000 + 1_600_000 + 400_000 + 5_000);
    let conv2 = s.rows.iter().find(|r| r.path == "conv2").unwrap();
    assert_eq!(conv2.output, vec![1, 50, 8, 8]);
    assert_eq!(lenet_300_100(0).summary(&[1, 784]).unwrap().total().storage_bits / 8, 1_066_440);
}

#[test]
fn shape_mismatch_names_the_layer() {
    let mut m = lenet_300_100(0);
    let err = m.forward(ArrayD::zeros(vec![2, 100]), Mode::Eval).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("fc1") && msg.contains("784") && msg.contains("[2, 100]"), "{msg}");
    let err = lenet5(0).summary(&[1, 1, 8, 8]).unwrap_err();
    assert!(err.to_string().contains("conv2"), "{err}");
}

#[test]
fn nan_and_inf_inputs_are_refused() {
    let mut m = lenet_300_100(0);
    let mut x = ArrayD::zeros(vec![1, 784]);
    x[[0, 3]] = f32::NAN;
    assert!(matches!(m.forward(x.clone(), Mode::Eval), Err(CoreError::NonFinite { .. })));
    x[[0, 3]] = f32::INFINITY;
    assert!(matches!(m.forward(x, Mode::Train), Err(CoreError::NonFinite { .. })));
}

#[test]
fn backward_without_forward_is_an_error() {
    let mut m = lenet_300_100(0);
    let err = m.backward(ArrayD::zeros(vec![1, 10])).unwrap_err();
    assert!(matches!(err, CoreError::NoForwardCache { .. }), "{err}");
    assert!(err.to_string().contains("fc3"), "{err}");
}

#[test]
fn bad_layer_configs_are_errors() {
    assert!(Conv2d::new(Conv2dConfig::new(3, 4, 3).groups(2), 0).is_err());
    assert!(Conv2d::new(Conv2dConfig::new(3, 4, 0), 0).is_err());
    assert!(Conv2d::new(Conv2dConfig::new(3, 4, 3).stride(0), 0).is_err());
    assert!(
        Linear::from_weights(ndarray::Array2::zeros((2, 3)), Some(ndarray::Array1::zeros(3)))
            .is_err()
    );
}
