//! Reading and writing [`StateDict`]s in the safetensors format (the `safetensors` crate
//! does the header parsing, validation and serialisation).
//!
//! Floating-point tensors are converted to `f32` on reading: `F16` and `BF16` exactly,
//! `F64` by an `as` cast (rounded to nearest; values beyond the `f32` range become
//! infinite). They are written back as `F32`. Every other dtype round-trips bit for bit.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use safetensors::{Dtype, SafeTensorError, SafeTensors, View};

use super::{StateDict, StateTensor};
use crate::error::{CoreError, Result};

const FORMAT: &str = "safetensors";
/// Size of the little-endian `u64` header length that starts every file.
const PREFIX: usize = 8;

/// Parses a safetensors file held in memory.
///
/// ```
/// use deepcompress_core::io::{read_safetensors_bytes, to_safetensors_bytes, StateDict};
/// use ndarray::{ArrayD, IxDyn};
/// let mut sd = StateDict::new();
/// sd.insert_f32("w", ArrayD::from_elem(IxDyn(&[2]), 0.5));
/// let back = read_safetensors_bytes(&to_safetensors_bytes(&sd)?)?;
/// assert_eq!(back, sd);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn read_safetensors_bytes(bytes: &[u8]) -> Result<StateDict> {
    let (header_len, meta) = SafeTensors::read_metadata(bytes).map_err(|e| st_err(e, bytes))?;
    // `read_metadata` checked that the offsets tile the data section exactly; slicing with
    // `get` keeps this free of panics all the same.
    let data = PREFIX.checked_add(header_len).and_then(|start| bytes.get(start..));
    let data = data.ok_or_else(|| CoreError::format(FORMAT, "header length exceeds the file"))?;
    let mut dict = StateDict::new();
    if let Some(m) = meta.metadata() {
        dict.metadata = m.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    }
    for (name, info) in meta.tensors() {
        let (start, end) = info.data_offsets;
        let raw = data.get(start..end).ok_or_else(|| {
            CoreError::format(FORMAT, format!("tensor `{name}` lies outside the data section"))
        })?;
        let tensor = decode(&name, info.dtype, &info.shape, raw)?;
        dict.insert(name, tensor);
    }
    Ok(dict)
}

/// Reads a safetensors file; errors name the file.
///
/// ```no_run
/// use deepcompress_core::io::read_safetensors;
/// let sd = read_safetensors("lenet5.safetensors")?;
/// let w = sd.get_f32("features.0.weight")?;
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn read_safetensors(path: impl AsRef<Path>) -> Result<StateDict> {
    let path = path.as_ref();
    let bytes =
        std::fs::read(path).map_err(|source| CoreError::Io { path: path.into(), source })?;
    read_safetensors_bytes(&bytes).map_err(|e| e.in_file(path))
}

/// Serialises to safetensors bytes: `F32` tensors as little-endian `F32`, raw tensors
/// with their own dtype and bytes, and `metadata` as `__metadata__` when not empty.
///
/// The layout is the one of the `safetensors` crate (tensors sorted by dtype, then name);
/// with more than one metadata entry their order in the header may vary between runs.
///
/// ```
/// use deepcompress_core::io::{to_safetensors_bytes, StateDict, StateTensor};
/// let mut sd = StateDict::new();
/// sd.insert("ids", StateTensor::Raw { dtype: "U8".into(), shape: vec![3], data: vec![1, 2, 3] });
/// let bytes = to_safetensors_bytes(&sd)?;
/// assert_eq!(&bytes[bytes.len() - 3..], &[1, 2, 3]);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn to_safetensors_bytes(dict: &StateDict) -> Result<Vec<u8>> {
    let blobs = blobs(dict)?;
    safetensors::serialize(blobs, metadata(dict)).map_err(|e| st_err(e, &[]))
}

/// Writes `dict` to `path` as [`to_safetensors_bytes`] would. The file is written to a
/// temporary sibling and renamed, so an existing file is never left half-written.
///
/// ```
/// use deepcompress_core::io::{read_safetensors, write_safetensors, StateDict};
/// use ndarray::{ArrayD, IxDyn};
/// let mut sd = StateDict::new();
/// sd.insert_f32("fc.weight", ArrayD::ones(IxDyn(&[2, 2])));
/// let path = std::env::temp_dir().join(format!("dc-doctest-{}.safetensors", std::process::id()));
/// write_safetensors(&sd, &path)?;
/// assert_eq!(read_safetensors(&path)?, sd);
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn write_safetensors(dict: &StateDict, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let blobs = blobs(dict)?;
    safetensors::serialize_to_file(blobs, metadata(dict), path).map_err(|e| match e {
        SafeTensorError::IoError(source) => CoreError::Io { path: path.into(), source },
        other => st_err(other, &[]).in_file(path),
    })
}

fn decode(name: &str, dtype: Dtype, shape: &[usize], raw: &[u8]) -> Result<StateTensor> {
    let values: Vec<f32> = match dtype {
        Dtype::F32 => {
            raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        Dtype::F16 => {
            raw.chunks_exact(2).map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        Dtype::BF16 => {
            raw.chunks_exact(2).map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect()
        }
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
        other => {
            let (dtype, shape, data) = (other.to_string(), shape.to_vec(), raw.to_vec());
            return Ok(StateTensor::Raw { dtype, shape, data });
        }
    };
    let array = ArrayD::from_shape_vec(IxDyn(shape), values)
        .map_err(|e| CoreError::format(FORMAT, format!("tensor `{name}`: {e}")))?;
    Ok(StateTensor::F32(array))
}

/// A tensor ready for the `safetensors` serialiser.
struct Blob<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data: Cow<'a, [u8]>,
}

impl View for Blob<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn blobs(dict: &StateDict) -> Result<Vec<(&str, Blob<'_>)>> {
    dict.iter()
        .map(|(name, tensor)| {
            if name == "__metadata__" {
                let reason = "`__metadata__` is reserved and cannot name a tensor";
                return Err(CoreError::format(FORMAT, reason));
            }
            let blob = match tensor {
                StateTensor::F32(a) => {
                    let mut data = Vec::with_capacity(a.len() * 4);
                    for v in a.iter() {
                        data.extend_from_slice(&v.to_le_bytes());
                    }
                    Blob { dtype: Dtype::F32, shape: a.shape(), data: Cow::Owned(data) }
                }
                StateTensor::Raw { dtype, shape, data } => {
                    let dt = parse_dtype(name, dtype)?;
                    check_len(name, dt, shape, data.len())?;
                    Blob { dtype: dt, shape, data: Cow::Borrowed(data) }
                }
            };
            Ok((name, blob))
        })
        .collect()
}

fn parse_dtype(name: &str, dtype: &str) -> Result<Dtype> {
    serde_json::from_value(serde_json::Value::String(dtype.to_string())).map_err(|_| {
        CoreError::Dtype {
            name: name.to_string(),
            dtype: dtype.to_string(),
            reason: "is not a safetensors dtype".to_string(),
        }
    })
}

/// The serialiser would also catch a mismatch, but with a less precise message.
fn check_len(name: &str, dtype: Dtype, shape: &[usize], len: usize) -> Result<()> {
    let bits = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.bitsize()));
    if bits.is_some_and(|b| b % 8 == 0 && b / 8 == len) {
        return Ok(());
    }
    let need = match bits {
        Some(b) if b % 8 == 0 => format!("{} bytes", b / 8),
        Some(b) => format!("{b} bits, not a whole number of bytes"),
        None => "more bytes than fit in memory".to_string(),
    };
    Err(CoreError::format(
        FORMAT,
        format!("cannot write tensor `{name}`: {dtype} {shape:?} needs {need}, it holds {len}"),
    ))
}

fn metadata(dict: &StateDict) -> Option<HashMap<String, String>> {
    (!dict.metadata.is_empty())
        .then(|| dict.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// Maps a library error, spelling out the two cases whose messages are vague.
fn st_err(e: SafeTensorError, bytes: &[u8]) -> CoreError {
    let reason = match e {
        SafeTensorError::InvalidHeaderLength => {
            let n = bytes
                .get(..PREFIX)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()));
            format!(
                "header length {n} exceeds the {} bytes after the length prefix",
                bytes.len().saturating_sub(PREFIX)
            )
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "file size {} does not match the tensor offsets in the header \
             (truncated file or trailing bytes)",
            bytes.len()
        ),
        other => other.to_string(),
    };
    CoreError::format(FORMAT, reason)
}
