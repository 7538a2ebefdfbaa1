//! The compressed-model file: same outputs after a round trip, sizes that match the
//! bytes, and corrupt files refused.

use deepcompress_core::layer::Linear;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext};
use deepcompress_prune::coding::{Container, EncodeOptions, decode_model, encode_model};
use deepcompress_prune::unstructured::{MagnitudePrune, Sparsity};
use ndarray::{ArrayD, IxDyn};

/// A LeNet-5 pruned to Deep Compression's fractions with its non-zeros rounded to 32
/// levels per layer, as weight sharing leaves them.
fn compressed_lenet5() -> Model {
    let mut m = deepcompress_core::models::lenet5(3);
    MagnitudePrune::new(
        Selector::all(),
        Sparsity::per_layer([("conv1", 0.34), ("conv2", 0.88), ("fc1", 0.92), ("fc2", 0.81)]),
    )
    .apply(&mut m, &mut PassContext::new(0))
    .unwrap();
    m.for_each_param_mut(|name, p| {
        if name.ends_with("weight") {
            let max = p.value().iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let step = max / 16.0;
            p.value_mut().mapv_inplace(|v| {
                if v == 0.0 {
                    0.0
                } else {
                    (v / step).round().clamp(-16.0, 15.0) * step + step / 2.0
                }
            });
            p.project();
        }
    });
    m
}

fn input() -> ArrayD<f32> {
    ArrayD::from_shape_fn(IxDyn(&[4, 1, 28, 28]), |i| {
        ((i[2] * 7 + i[3] * 3 + i[0]) % 11) as f32 / 11.0
    })
}

#[test]
fn round_trip_gives_the_same_outputs_and_the_file_size_is_the_report() {
    let mut m = compressed_lenet5();
    let c = encode_model(&m, &EncodeOptions::default()).unwrap();
    let bytes = c.to_bytes();
    assert_eq!(bytes.len() as u64, c.encoded_bytes());
    let back = Container::from_bytes(&bytes).unwrap();
    assert_eq!(back, c);
    let mut loaded = decode_model(&back, &deepcompress_core::models::lenet5(99)).unwrap();
    let (a, b) = (m.predict(&input(), 4).unwrap(), loaded.predict(&input(), 4).unwrap());
    let worst = (&a - &b).iter().fold(0.0f32, |x, d| x.max(d.abs()));
    assert!(worst < 1e-4, "outputs differ by {worst}");
    // the compressed layers carry the stored encoding, so the summary's size is the file's
    // payload (the file adds paths, shapes and headers)
    // payload (the file adds paths, shapes, lengths and a 28-byte header): exactly
    let summary_bits = loaded.summary(&[1, 1, 28, 28]).unwrap().total().storage_bits;
    let overhead: u64 = c.records.iter().map(|r| r.size().overhead_bits).sum();
    assert_eq!(summary_bits + overhead + 8 * 28, 8 * bytes.len() as u64);
    assert!(bytes.len() < 1_724_320 / 25, "{} bytes", bytes.len());
    // re-encoding the loaded model gives the same file
    assert_eq!(encode_model(&loaded, &EncodeOptions::default()).unwrap().to_bytes(), bytes);
}

#[test]
fn corrupt_and_mismatched_files_are_errors() {
    let m = compressed_lenet5();
    let bytes = encode_model(&m, &EncodeOptions::default()).unwrap().to_bytes();
    for cut in [0, 10, 27, 28, bytes.len() / 2, bytes.len() - 1] {
        assert!(Container::from_bytes(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 3] ^= 0x10;
    assert!(Container::from_bytes(&flipped).is_err());
    // a LeNet-5 file does not load into LeNet-300-100
    let c = Container::from_bytes(&bytes).unwrap();
    let arch = deepcompress_core::models::lenet_300_100(0);
    let err = decode_model(&c, &arch).unwrap_err();
    assert!(!err.to_string().is_empty());
    assert_eq!(arch.state_dict(), deepcompress_core::models::lenet_300_100(0).state_dict());
    // NaN weights are refused when encoding
    let mut bad = deepcompress_core::models::lenet_300_100(0);
    bad.layer_mut("fc3").unwrap().params_mut()[0].1.value_mut()[[0, 0]] = f32::NAN;
    let err = encode_model(&bad, &EncodeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("fc3"), "{err}");
    let _ = bad.layer_as::<Linear>("fc3").unwrap();
}
