//! Interoperability with Python's `safetensors`: reads a PyTorch-style file written by
//! `tests/fixtures/make_fixture.py` and checks every value against its JSON sidecar.

use std::path::PathBuf;

use deepcompress_core::io::{StateDict, StateTensor, read_safetensors, write_safetensors};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn expected() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(fixture("pytorch_style.expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn values(entry: &Value) -> Vec<&str> {
    entry["values"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect()
}

fn shape(entry: &Value) -> Vec<usize> {
    entry["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect()
}

/// Checks `sd` against the sidecar: floats exactly equal to the decimal value (rounded to
/// f32 for F64 sources), integers as little-endian bytes.
fn check_against_expected(sd: &StateDict) {
    let mut expected = expected();
    let metadata = expected.remove("__metadata__").unwrap();
    assert_eq!(serde_json::to_value(&sd.metadata).unwrap(), metadata);
    let mut names: Vec<&str> = expected.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(sd.names().collect::<Vec<_>>(), names);

    for (name, entry) in &expected {
        let dtype = entry["dtype"].as_str().unwrap();
        let tensor = sd.get(name).unwrap();
        assert_eq!(tensor.shape(), shape(entry), "{name}");
        match dtype {
            "F32" | "F16" | "BF16" | "F64" => {
                let got = sd.get_f32(name).unwrap();
                for (g, want) in got.iter().zip(values(entry)) {
                    let want: f64 = want.parse().unwrap();
                    if dtype != "F64" {
                        // These sources are exactly representable in f32.
                        assert_eq!(want as f32 as f64, want, "{name}");
                    }
                    assert_eq!(g.to_bits(), (want as f32).to_bits(), "{name}: {g} vs {want}");
                }
            }
            "I64" => {
                let StateTensor::Raw { dtype, data, .. } = tensor else {
                    panic!("{name} should be raw");
                };
                assert_eq!(dtype, "I64");
                let want: Vec<u8> = values(entry)
                    .iter()
                    .flat_map(|v| v.parse::<i64>().unwrap().to_le_bytes())
                    .collect();
                assert_eq!(data, &want, "{name}");
            }
            other => panic!("fixture has unexpected dtype {other}"),
        }
    }
}

#[test]
fn reads_python_written_file_exactly() {
    let sd = read_safetensors(fixture("pytorch_style.safetensors")).unwrap();
    check_against_expected(&sd);
    let ids = sd.get("position_ids").unwrap();
    let want: Vec<u8> = (0..8i64).flat_map(i64::to_le_bytes).collect();
    assert_eq!(ids, &StateTensor::Raw { dtype: "I64".into(), shape: vec![1, 8], data: want });
    assert!(sd.get_f32("position_ids").is_err());
}

#[test]
fn round_trip_through_a_file_keeps_values_and_raw_bytes() {
    let sd = read_safetensors(fixture("pytorch_style.safetensors")).unwrap();
    let out =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pytorch_style.roundtrip.safetensors");
    write_safetensors(&sd, &out).unwrap();
    let back = read_safetensors(&out).unwrap();
    assert_eq!(back, sd);
    check_against_expected(&back);
    // Float tensors are now F32; the raw ones keep dtype and bytes.
    assert!(back.iter().all(|(_, t)| matches!(t.dtype(), "F32" | "I64")));
    for name in ["position_ids", "features.1.num_batches_tracked"] {
        assert_eq!(back.get(name), sd.get(name), "{name}");
    }
    std::fs::remove_file(&out).unwrap();
}
