//! Model state dicts and safetensors files: round trips, and refusals that leave the
//! model unchanged.

use deepcompress_core::io::{StateTensor, read_safetensors, write_safetensors};
use deepcompress_core::layer::Mode;
use deepcompress_core::models::{lenet5, resnet_small};
use deepcompress_core::{CoreError, Model};
use ndarray::ArrayD;

fn bits(m: &Model) -> Vec<u32> {
    let mut v = Vec::new();
    m.for_each_param(|_, p| v.extend(p.value().iter().map(|x| x.to_bits())));
    v
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("deepcompress-test-{}-{name}", std::process::id()))
}

#[test]
fn resnet_round_trip_keeps_outputs_and_buffers() {
    let mut a = resnet_small(1);
    // Move the running statistics away from their defaults.
    a.forward(
        ArrayD::from_shape_fn(vec![8, 1, 28, 28], |d| (d[0] + d[2]) as f32 / 30.0),
        Mode::Train,
    )
    .unwrap();
    let path = tmp("resnet.safetensors");
    a.save_safetensors(&path).unwrap();
    let mut b = resnet_small(2);
    assert!(b.load_safetensors(&path).unwrap().is_empty());
    let x = ArrayD::from_shape_fn(vec![2, 1, 28, 28], |d| (d[3] % 5) as f32 / 5.0);
    let (ya, yb) = (a.forward(x.clone(), Mode::Eval).unwrap(), b.forward(x, Mode::Eval).unwrap());
    assert_eq!(ya, yb);
    std::fs::remove_file(path).ok();
}

#[test]
fn extra_non_float_tensors_are_reported_and_survive_a_file_round_trip() {
    let m = lenet5(0);
    let mut sd = m.state_dict();
    let ids: Vec<u8> = (0i64..4).flat_map(|v| v.to_le_bytes()).collect();
    sd.insert(
        "position_ids",
        StateTensor::Raw { dtype: "I64".into(), shape: vec![1, 4], data: ids.clone() },
    );
    let path = tmp("extra.safetensors");
    write_safetensors(&sd, &path).unwrap();
    let mut loaded = read_safetensors(&path).unwrap();
    let mut target = lenet5(9);
    assert_eq!(target.load_state_dict(&loaded).unwrap(), vec!["position_ids".to_string()]);
    // Update the floats from the model and write again: the int64 tensor is untouched.
    for (name, t) in target.state_dict().iter() {
        loaded.insert(name, t.clone());
    }
    write_safetensors(&loaded, &path).unwrap();
    match read_safetensors(&path).unwrap().get("position_ids").unwrap() {
        StateTensor::Raw { dtype, data, .. } => assert_eq!((dtype.as_str(), data), ("I64", &ids)),
        other => panic!("position_ids became {other:?}"),
    }
    std::fs::remove_file(path).ok();
}

#[test]
fn wrong_shape_missing_name_and_wrong_dtype_leave_the_model_unchanged() {
    let mut m = lenet5(0);
    let before = bits(&m);
    let mut sd = lenet5(1).state_dict();
    sd.insert_f32("fc2.weight", ArrayD::zeros(vec![10, 499]));
    let err = m.load_state_dict(&sd).unwrap_err();
    assert!(err.to_string().contains("fc2.weight") && err.to_string().contains("499"), "{err}");
    assert_eq!(bits(&m), before);

    let mut sd = lenet5(1).state_dict();
    sd.remove("conv2.bias");
    let err = m.load_state_dict(&sd).unwrap_err();
    assert!(err.to_string().contains("conv2.bias"), "{err}");
    assert_eq!(bits(&m), before);

    let mut sd = lenet5(1).state_dict();
    sd.insert(
        "fc1.bias",
        StateTensor::Raw { dtype: "I32".into(), shape: vec![500], data: vec![0; 2000] },
    );
    assert!(matches!(m.load_state_dict(&sd), Err(CoreError::Dtype { .. })));
    assert_eq!(bits(&m), before);
}

#[test]
fn corrupt_and_truncated_files_are_errors() {
    let m = lenet5(0);
    let path = tmp("corrupt.safetensors");
    m.save_safetensors(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let mut target = lenet5(1);
    let before = bits(&target);
    assert!(matches!(target.load_safetensors(&path), Err(CoreError::Format { .. })));
    std::fs::write(&path, b"not a safetensors file at all").unwrap();
    assert!(matches!(target.load_safetensors(&path), Err(CoreError::Format { .. })));
    assert!(matches!(
        target.load_safetensors(tmp("missing.safetensors")),
        Err(CoreError::Io { .. })
    ));
    assert_eq!(bits(&target), before);
    std::fs::remove_file(path).ok();
}
