//! Tests of the IDX reader, MNIST loading and `Dataset`.

use std::io::Write;

use flate2::{Compression, write::GzEncoder};
use ndarray::{ArrayD, IxDyn};
use proptest::prelude::*;

use super::*;
use crate::CoreError;

/// A raw IDX file of unsigned bytes.
fn idx(shape: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for d in shape {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Asserts a `Format` error of `format` whose reason mentions `needle`.
fn assert_format<T: std::fmt::Debug>(r: crate::Result<T>, format: &str, needle: &str) {
    match r {
        Err(CoreError::Format { format: f, reason, .. }) => {
            assert_eq!(f, format);
            assert!(reason.contains(needle), "{reason:?} does not mention {needle:?}");
        }
        other => panic!("expected a {format} format error, got {other:?}"),
    }
}

fn images(n: u32) -> Vec<u8> {
    idx(&[n, 2, 2], &vec![128; 4 * n as usize])
}

#[test]
fn raw_and_gzip_give_the_same_array() {
    let raw = idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
    let a = read_idx_bytes(&raw).unwrap();
    assert_eq!(a, IdxArray { shape: vec![2, 3], data: vec![1, 2, 3, 4, 5, 6] });
    assert_eq!(read_idx_bytes(&gzip(&raw)).unwrap(), a);
}

#[test]
fn empty_dimension_is_accepted() {
    let a = read_idx_bytes(&idx(&[0, 28, 28], &[])).unwrap();
    assert_eq!((a.shape.as_slice(), a.len()), (&[0, 28, 28][..], 0));
}

#[test]
fn bad_magic() {
    assert_format(read_idx_bytes(&[1, 0, 8, 1, 0, 0, 0, 0]), "IDX", "bad magic");
}

#[test]
fn unsupported_type_code_is_named() {
    assert_format(read_idx_bytes(&[0, 0, 0x0d, 1, 0, 0, 0, 0]), "IDX", "0x0d (f32)");
    assert_format(read_idx_bytes(&[0, 0, 0x42, 1, 0, 0, 0, 0]), "IDX", "0x42");
}

#[test]
fn zero_and_too_many_dims() {
    assert_format(read_idx_bytes(&[0, 0, 8, 0]), "IDX", "zero dimensions");
    assert_format(read_idx_bytes(&[0, 0, 8, 200]), "IDX", "200 dimensions");
}

#[test]
fn truncated_header() {
    assert_format(read_idx_bytes(&[0, 0, 8]), "IDX", "truncated header");
    assert_format(read_idx_bytes(&[0, 0, 8, 3, 0, 0, 0, 2, 0]), "IDX", "need 12 bytes, got 5");
}

#[test]
fn truncated_data_says_expected_and_got() {
    let bytes = idx(&[2, 3], &[1, 2, 3, 4]);
    assert_format(read_idx_bytes(&bytes), "IDX", "needs 6 bytes, got 4");
    assert_format(read_idx_bytes(&gzip(&bytes)), "IDX", "needs 6 bytes, got 4");
}

#[test]
fn absurd_header_does_not_allocate() {
    // 2^96 elements claimed: rejected by checked arithmetic.
    assert_format(read_idx_bytes(&idx(&[u32::MAX; 3], &[1])), "IDX", "overflow");
    // 16 GiB claimed with one byte present: reported as truncation, not an allocation.
    assert_format(read_idx_bytes(&idx(&[1 << 16, 1 << 18], &[1])), "IDX", "got 1");
}

#[test]
fn trailing_garbage() {
    let bytes = idx(&[2], &[1, 2, 3]);
    assert_format(read_idx_bytes(&bytes), "IDX", "trailing garbage");
    assert_format(read_idx_bytes(&gzip(&bytes)), "IDX", "trailing garbage");
}

#[test]
fn non_gzip_garbage() {
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    assert_format(read_idx_bytes(&garbage), "IDX", "bad magic");
}

#[test]
fn gzip_of_garbage() {
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    assert_format(read_idx_bytes(&gzip(&garbage)), "IDX", "bad magic");
}

#[test]
fn corrupt_gzip() {
    let mut gz = gzip(&idx(&[100], &[7; 100]));
    // Flip a byte of the CRC in the trailer, then cut a stream short.
    let crc = gz.len() - 8;
    gz[crc] ^= 0xff;
    assert_format(read_idx_bytes(&gz), "IDX", "gzip");
    let gz = gzip(&idx(&[100], &[7; 100]));
    assert_format(read_idx_bytes(&gz[..gz.len() / 2]), "IDX", "gzip");
    assert_format(read_idx_bytes(&[0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), "IDX", "gzip");
}

#[test]
fn missing_file_is_io_error_with_path() {
    let err = read_idx_file("/nonexistent/train-images-idx3-ubyte.gz").unwrap_err();
    assert!(
        matches!(&err, CoreError::Io { path, .. } if path.ends_with("train-images-idx3-ubyte.gz"))
    );
}

#[test]
fn wrong_label_count() {
    let labels = idx(&[2], &[1, 2]);
    assert_format(Mnist::split_from_bytes(&images(3), &labels), "MNIST", "3 images");
}

#[test]
fn label_out_of_range() {
    let labels = idx(&[3], &[1, 10, 2]);
    assert_format(Mnist::split_from_bytes(&images(3), &labels), "MNIST", "label 10 of sample 1");
}

#[test]
fn images_must_be_three_dimensional() {
    let labels = idx(&[3], &[1, 1, 2]);
    assert_format(
        Mnist::split_from_bytes(&idx(&[3, 4], &[0; 12]), &labels),
        "MNIST",
        "3 dimensions",
    );
}

#[test]
fn embedded_split_sizes_and_class_counts() {
    let m = Mnist::embedded().unwrap();
    assert_eq!(m.train.inputs.shape(), &[8000, 1, 28, 28]);
    assert_eq!(m.test.inputs.shape(), &[2000, 1, 28, 28]);
    assert_eq!(m.train.class_counts(), vec![801, 902, 793, 826, 784, 690, 811, 856, 755, 782]);
    assert_eq!(m.test.class_counts(), vec![200, 225, 198, 206, 196, 173, 203, 214, 189, 196]);
    for ds in [&m.train, &m.test] {
        assert!(ds.inputs.iter().all(|&p| (0.0..=1.0).contains(&p)));
        // Real images: both ends of the range occur.
        assert!(ds.inputs.iter().any(|&p| p == 0.0) && ds.inputs.iter().any(|&p| p == 1.0));
    }
}

#[test]
fn load_dir_reads_files_and_names_missing_ones() {
    let dir = std::env::temp_dir().join(format!("dc-mnist-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let raw_images = idx(&[3, 2, 2], &[0, 51, 102, 255, 0, 0, 0, 0, 1, 2, 3, 4]);
    let labels = idx(&[3], &[4, 0, 9]);
    // One split gzip-compressed with `t10k-` names, the other raw with `train-` names.
    std::fs::write(dir.join("train-images-idx3-ubyte"), &raw_images).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), &labels).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gzip(&raw_images)).unwrap();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels)).unwrap();
    let m = Mnist::load_dir(&dir).unwrap();
    assert_eq!(m.train, m.test);
    assert_eq!(m.train.labels, vec![4, 0, 9]);
    assert_eq!(&m.train.inputs.as_slice().unwrap()[..4], &[0.0, 0.2, 0.4, 1.0]);

    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gzip(&labels[..10])).unwrap();
    match Mnist::load_dir(&dir) {
        Err(CoreError::Format { path: Some(p), .. }) => {
            assert!(p.ends_with("t10k-labels-idx1-ubyte.gz"))
        }
        other => panic!("expected a format error naming the file, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(Mnist::load_dir(&dir), Err(CoreError::Io { .. })));
}

fn toy() -> Dataset {
    let inputs =
        ArrayD::from_shape_fn(IxDyn(&[5, 2, 3]), |ix| (ix[0] * 100 + ix[1] * 10 + ix[2]) as f32);
    Dataset::new(inputs, vec![0, 1, 2, 1, 0]).unwrap()
}

#[test]
fn dataset_new_checks_counts_and_finiteness() {
    let x = ArrayD::<f32>::zeros(IxDyn(&[3, 2]));
    assert!(matches!(Dataset::new(x.clone(), vec![0; 4]), Err(CoreError::Shape { .. })));
    assert!(matches!(
        Dataset::new(ArrayD::zeros(IxDyn(&[])), vec![]),
        Err(CoreError::Shape { .. })
    ));
    let mut bad = x;
    bad[[1, 1]] = f32::NAN;
    assert!(matches!(Dataset::new(bad, vec![0; 3]), Err(CoreError::NonFinite { .. })));
}

#[test]
fn batch_matches_select_including_non_standard_layout() {
    let ds = toy();
    let idx = [4, 0, 4, 2];
    let (x, y) = ds.batch(&idx);
    assert_eq!(x, ds.inputs.select(ndarray::Axis(0), &idx));
    assert_eq!(y, vec![0, 0, 0, 2]);
    // Fields are public: a transposed sample layout must still give the right rows.
    let mut t = ds.clone();
    t.inputs = ds.inputs.clone().permuted_axes(IxDyn(&[0, 2, 1]));
    assert_eq!(t.batch(&idx).0, t.inputs.select(ndarray::Axis(0), &idx));
    // Non-standard input to `new` is normalised so that `batch` takes the fast path.
    let n = Dataset::new(t.inputs.clone(), t.labels.clone()).unwrap();
    assert!(n.inputs.is_standard_layout());
    assert_eq!(n.batch(&idx).0, t.batch(&idx).0);
}

#[test]
#[should_panic]
fn batch_panics_on_out_of_range_index() {
    toy().batch(&[5]);
}

#[test]
fn subset_take_reshape() {
    let ds = toy();
    assert_eq!(ds.subset(&[1, 3]).unwrap().labels, vec![1, 1]);
    assert!(matches!(ds.subset(&[0, 9]), Err(CoreError::InvalidParam { .. })));
    assert_eq!(ds.take(2), ds.subset(&[0, 1]).unwrap());
    assert_eq!(ds.take(0).inputs.shape(), &[0, 2, 3]);
    let flat = ds.clone().reshape_inputs(&[6]).unwrap();
    assert_eq!(flat.inputs.shape(), &[5, 6]);
    assert_eq!(flat.inputs.as_slice(), ds.inputs.as_slice());
    assert!(matches!(ds.reshape_inputs(&[4]), Err(CoreError::Shape { .. })));
    assert_eq!(toy().num_classes(), 3);
}

proptest! {
    #[test]
    fn idx_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = read_idx_bytes(&bytes);
        let _ = read_idx_bytes(&gzip(&bytes));
    }

    #[test]
    fn idx_prefix_of_valid_file_is_an_error(cut in 0usize..34) {
        let full = idx(&[2, 3, 3], &[9; 18]);
        prop_assert!(read_idx_bytes(&full[..cut]).is_err());
        prop_assert!(read_idx_bytes(&full).is_ok());
    }
}
