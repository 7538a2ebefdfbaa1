//! Tests of `StateDict` and safetensors reading and writing (interop with Python is in
//! `tests/safetensors_interop.rs`).

use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

use super::*;
use crate::CoreError;

fn sample() -> StateDict {
    let mut sd = StateDict::new();
    let w = ArrayD::from_shape_fn(IxDyn(&[4, 1, 3, 3]), |ix| ix[0] as f32 - 0.1 * ix[3] as f32);
    sd.insert_f32("features.0.weight", w);
    sd.insert_f32(
        "features.0.bias",
        ndarray::Array1::from_vec(vec![f32::NAN, -0.0, f32::INFINITY, 1e-40]).into_dyn(),
    );
    sd.insert_f32("scalar", ArrayD::from_elem(IxDyn(&[]), 3.5));
    sd.insert_f32("empty", ArrayD::zeros(IxDyn(&[0, 3])));
    let ids: Vec<u8> = (0..8i64).flat_map(i64::to_le_bytes).collect();
    sd.insert(
        "position_ids",
        StateTensor::Raw { dtype: "I64".into(), shape: vec![1, 8], data: ids },
    );
    sd.insert(
        "mask",
        StateTensor::Raw { dtype: "BOOL".into(), shape: vec![3], data: vec![1, 0, 1] },
    );
    sd.metadata.insert("format".into(), "pt".into());
    sd
}

/// Compares float tensors bit for bit (NaN != NaN under `PartialEq`).
fn assert_bit_identical(a: &StateDict, b: &StateDict) {
    assert_eq!(a.names().collect::<Vec<_>>(), b.names().collect::<Vec<_>>());
    assert_eq!(a.metadata, b.metadata);
    for (name, t) in a.iter() {
        match (t, b.get(name).unwrap()) {
            (StateTensor::F32(x), StateTensor::F32(y)) => {
                assert_eq!(x.shape(), y.shape(), "{name}");
                let bits = |a: &ArrayD<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(x), bits(y), "{name}");
            }
            (x, y) => assert_eq!(x, y, "{name}"),
        }
    }
}

/// A file made by hand: 8-byte little-endian header length, JSON header, data.
fn handmade(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

fn assert_format<T: std::fmt::Debug>(r: crate::Result<T>, needle: &str) {
    match r {
        Err(CoreError::Format { format: "safetensors", reason, .. }) => {
            assert!(reason.contains(needle), "{reason:?} does not mention {needle:?}")
        }
        other => panic!("expected a safetensors format error, got {other:?}"),
    }
}

#[test]
fn bytes_round_trip_is_bit_exact() {
    let sd = sample();
    let bytes = to_safetensors_bytes(&sd).unwrap();
    assert_bit_identical(&sd, &read_safetensors_bytes(&bytes).unwrap());
    // Writing what was read gives the same bytes again.
    assert_eq!(to_safetensors_bytes(&read_safetensors_bytes(&bytes).unwrap()).unwrap(), bytes);
}

#[test]
fn file_round_trip_and_io_errors() {
    let path = std::env::temp_dir().join(format!("dc-io-{}.safetensors", std::process::id()));
    write_safetensors(&sample(), &path).unwrap();
    assert_bit_identical(&sample(), &read_safetensors(&path).unwrap());
    std::fs::remove_file(&path).unwrap();
    match read_safetensors(&path) {
        Err(CoreError::Io { path: p, source }) => {
            assert_eq!(p, path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let missing_dir = std::env::temp_dir().join("dc-no-such-dir").join("x.safetensors");
    assert!(matches!(write_safetensors(&sample(), missing_dir), Err(CoreError::Io { .. })));
}

#[test]
fn f16_bf16_f64_are_converted_and_others_kept_raw() {
    let header = r#"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},
        "b":{"dtype":"BF16","shape":[2],"data_offsets":[4,8]},
        "d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},
        "q":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[16,18]}}"#;
    let mut data = Vec::new();
    for v in [1.5f32, -2.0] {
        data.extend_from_slice(&half::f16::from_f32(v).to_le_bytes());
    }
    for v in [0.15625f32, 3.0e38] {
        data.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes());
    }
    data.extend_from_slice(&1e300f64.to_le_bytes());
    data.extend_from_slice(&[0x38, 0xb8]);
    let sd = read_safetensors_bytes(&handmade(header, &data)).unwrap();
    assert_eq!(sd.get_f32("h").unwrap().as_slice().unwrap(), &[1.5, -2.0]);
    let b = sd.get_f32("b").unwrap();
    assert_eq!(b[[0]], 0.15625);
    assert_eq!(b[[1]], half::bf16::from_f32(3.0e38).to_f32());
    // Documented: an out-of-range f64 becomes infinite.
    assert_eq!(sd.get_f32("d").unwrap()[[0]], f32::INFINITY);
    let q = sd.get("q").unwrap();
    assert_eq!((q.dtype(), q.shape()), ("F8_E4M3", &[2][..]));
    assert!(matches!(q, StateTensor::Raw { data, .. } if data == &[0x38, 0xb8]));
}

#[test]
fn garbage_bytes() {
    assert_format(read_safetensors_bytes(b"not a safetensors file at all"), "");
    assert_format(read_safetensors_bytes(&[1, 2, 3]), "header too small");
}

#[test]
fn header_length_larger_than_file() {
    let mut bytes = handmade("{}", &[]);
    bytes[..8].copy_from_slice(&1000u64.to_le_bytes());
    assert_format(read_safetensors_bytes(&bytes), "header length 1000 exceeds the 2 bytes");
}

#[test]
fn invalid_json_header() {
    assert_format(read_safetensors_bytes(&handmade("{\"a\": [", &[])), "JSON");
    assert_format(read_safetensors_bytes(&handmade("\u{ff}", &[])), "");
}

#[test]
fn unknown_dtype_in_header() {
    let header = r#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#;
    assert_format(read_safetensors_bytes(&handmade(header, &[0])), "Q4");
}

#[test]
fn truncated_data() {
    let bytes = to_safetensors_bytes(&sample()).unwrap();
    assert_format(read_safetensors_bytes(&bytes[..bytes.len() - 3]), "truncated");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_format(read_safetensors_bytes(&longer), "trailing");
}

#[test]
fn dtype_size_mismatch() {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,6]}}"#;
    assert_format(read_safetensors_bytes(&handmade(header, &[0; 6])), "invalid shape");
    let header = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#;
    assert_format(read_safetensors_bytes(&handmade(header, &[0; 4])), "overflow");
}

#[test]
fn get_f32_of_missing_name_suggests_neighbours() {
    let err = sample().get_f32("features.0.weigth").unwrap_err();
    match &err {
        CoreError::UnknownPath { path, hint } => {
            assert_eq!(path, "features.0.weigth");
            assert!(hint.contains("`features.0.weight`"), "{hint}");
        }
        other => panic!("expected UnknownPath, got {other:?}"),
    }
    assert!(
        matches!(StateDict::new().get_f32("x"), Err(CoreError::UnknownPath { hint, .. }) if hint.is_empty())
    );
}

#[test]
fn get_f32_of_int64_tensor() {
    let err = sample().get_f32("position_ids").unwrap_err();
    assert!(
        matches!(&err, CoreError::Dtype { name, dtype, .. } if name == "position_ids" && dtype == "I64")
    );
    assert!(err.to_string().contains("I64"));
}

#[test]
fn writing_rejects_inconsistent_raw_tensors() {
    let mut sd = StateDict::new();
    sd.insert("x", StateTensor::Raw { dtype: "I64".into(), shape: vec![2], data: vec![0; 10] });
    assert_format(to_safetensors_bytes(&sd), "needs 16 bytes, it holds 10");
    sd.insert("x", StateTensor::Raw { dtype: "I65".into(), shape: vec![1], data: vec![0; 8] });
    assert!(matches!(to_safetensors_bytes(&sd), Err(CoreError::Dtype { .. })));
    sd.insert(
        "x",
        StateTensor::Raw { dtype: "U8".into(), shape: vec![usize::MAX, 2], data: vec![] },
    );
    assert_format(to_safetensors_bytes(&sd), "more bytes than fit");
    let mut sd = StateDict::new();
    sd.insert_f32("__metadata__", ArrayD::zeros(IxDyn(&[1])));
    assert_format(to_safetensors_bytes(&sd), "reserved");
}

#[test]
fn state_dict_basics() {
    let mut sd = sample();
    assert_eq!(sd.len(), 6);
    assert!(sd.names().any(|n| n == "mask"));
    assert!(sd.remove("mask").is_some() && sd.remove("mask").is_none());
    assert_eq!(sd.len(), 5);
    assert_eq!(sd.get("scalar").unwrap().shape(), &[] as &[usize]);
    assert!(sd.get("position_ids").unwrap().as_f32().is_none());
}

proptest! {
    #[test]
    fn reading_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_safetensors_bytes(&bytes);
    }

    #[test]
    fn reading_a_damaged_file_never_panics(pos in 0usize..400, val in any::<u8>(), cut in 0usize..400) {
        let mut bytes = to_safetensors_bytes(&sample()).unwrap();
        let n = bytes.len();
        bytes[pos % n] = val;
        let _ = read_safetensors_bytes(&bytes);
        let _ = read_safetensors_bytes(&bytes[..cut % n]);
    }

    #[test]
    fn f32_values_round_trip(values in proptest::collection::vec(any::<u32>(), 0..50)) {
        let mut sd = StateDict::new();
        sd.insert_f32("w", ndarray::Array1::from_vec(values.iter().map(|&b| f32::from_bits(b)).collect()).into_dyn());
        let back = read_safetensors_bytes(&to_safetensors_bytes(&sd).unwrap()).unwrap();
        let got: Vec<u32> = back.get_f32("w").unwrap().iter().map(|v| v.to_bits()).collect();
        prop_assert_eq!(got, values);
    }
}
