//! Reader for the IDX format of the original MNIST distribution, raw or gzip-compressed.
//!
//! Layout: a big-endian `u32` magic `0x0000_TTNN` (`TT` = element type, `NN` = number of
//! dimensions), one big-endian `u32` per dimension, then the elements in row-major order.

use std::io::Read;
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::error::{CoreError, Result};

/// Largest number of dimensions accepted; real IDX files use 1 to 4.
pub const MAX_DIMS: usize = 16;

/// Deflate cannot expand data more than about 1032-fold, so this bounds how much memory a
/// gzip stream of a given size can honestly fill; preallocation never goes beyond it.
const DEFLATE_MAX_RATIO: usize = 1032;

/// The decoded content of an IDX file holding unsigned bytes.
///
/// ```
/// use deepcompress_core::data::IdxArray;
/// let a = IdxArray { shape: vec![2, 3], data: vec![0, 1, 2, 3, 4, 5] };
/// assert_eq!(a.len(), 6);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Size of each dimension, outermost first.
    pub shape: Vec<usize>,
    /// The elements in row-major order; `data.len()` is the product of `shape`.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Number of elements.
    ///
    /// ```
    /// use deepcompress_core::data::IdxArray;
    /// assert_eq!(IdxArray { shape: vec![0, 28, 28], data: vec![] }.len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when there are no elements.
    ///
    /// ```
    /// use deepcompress_core::data::IdxArray;
    /// assert!(IdxArray { shape: vec![0], data: vec![] }.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Parses an IDX file held in memory; gzip input (starting with `1f 8b`) is inflated first.
///
/// Only the unsigned-byte element type (`0x08`) is supported. The header is checked against
/// the data actually present before anything large is allocated.
///
/// ```
/// use deepcompress_core::data::read_idx_bytes;
/// // magic 0x00000801 (u8, 1 dim), 3 elements, then the data
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9];
/// let a = read_idx_bytes(&bytes)?;
/// assert_eq!(a.shape, vec![3]);
/// assert_eq!(a.data, vec![7, 8, 9]);
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn read_idx_bytes(bytes: &[u8]) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let cap = bytes.len().saturating_mul(DEFLATE_MAX_RATIO);
        parse(&mut MultiGzDecoder::new(bytes), cap, true)
    } else {
        parse(&mut &bytes[..], bytes.len(), false)
    }
}

/// Reads and parses an IDX file (raw or gzip-compressed); errors name the file.
///
/// ```no_run
/// use deepcompress_core::data::read_idx_file;
/// let labels = read_idx_file("data/mnist/train-labels-idx1-ubyte.gz")?;
/// println!("{} labels", labels.len());
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
pub fn read_idx_file(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let bytes =
        std::fs::read(path).map_err(|source| CoreError::Io { path: path.into(), source })?;
    read_idx_bytes(&bytes).map_err(|e| e.in_file(path))
}

fn err(reason: impl Into<String>) -> CoreError {
    CoreError::format("IDX", reason)
}

/// `max_len` bounds the size the stream can really hold, used only to cap preallocation.
fn parse(r: &mut impl Read, max_len: usize, gz: bool) -> Result<IdxArray> {
    let mut magic = [0u8; 4];
    if fill(r, &mut magic, gz)? < 4 {
        return Err(err("truncated header: fewer than 4 bytes for the magic number"));
    }
    if magic[0] != 0 || magic[1] != 0 {
        let m = u32::from_be_bytes(magic);
        return Err(err(format!("bad magic number 0x{m:08x}: must start with two zero bytes")));
    }
    check_type(magic[2])?;
    let ndims = usize::from(magic[3]);
    if ndims == 0 {
        return Err(err("zero dimensions in the magic number"));
    }
    if ndims > MAX_DIMS {
        return Err(err(format!("{ndims} dimensions is more than the {MAX_DIMS} supported")));
    }

    let mut dims = vec![0u8; 4 * ndims];
    let got = fill(r, &mut dims, gz)?;
    if got < dims.len() {
        return Err(err(format!(
            "truncated header: {ndims} dimensions need {} bytes, got {got}",
            dims.len()
        )));
    }
    let shape = dims
        .chunks_exact(4)
        .map(|c| usize::try_from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| err("dimension does not fit in usize"))?;
    let expected = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| err(format!("dimensions {shape:?} overflow usize")))?;

    // Grow with the data actually present rather than trusting the header's size.
    let mut data = Vec::with_capacity(expected.min(max_len));
    r.take(expected as u64).read_to_end(&mut data).map_err(|e| stream_err(&e, gz))?;
    if data.len() < expected {
        return Err(err(format!(
            "truncated data: shape {shape:?} needs {expected} bytes, got {}",
            data.len()
        )));
    }
    // Reading on to the end also makes the gzip decoder verify its CRC.
    let mut extra = [0u8; 1];
    if fill(r, &mut extra, gz)? != 0 {
        return Err(err(format!("trailing garbage after the {expected} data bytes")));
    }
    Ok(IdxArray { shape, data })
}

fn check_type(code: u8) -> Result<()> {
    let name = match code {
        0x08 => return Ok(()),
        0x09 => "signed byte",
        0x0b => "i16",
        0x0c => "i32",
        0x0d => "f32",
        0x0e => "f64",
        _ => return Err(err(format!("unknown data type code 0x{code:02x} in the magic number"))),
    };
    Err(err(format!("unsupported data type code 0x{code:02x} ({name}); only 0x08 (u8) is read")))
}

/// Reads until `buf` is full or the stream ends; returns the number of bytes read.
fn fill(r: &mut impl Read, buf: &mut [u8], gz: bool) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(stream_err(&e, gz)),
        }
    }
    Ok(n)
}

/// Reading a slice never fails, so in practice errors come from the gzip decoder.
fn stream_err(e: &std::io::Error, gz: bool) -> CoreError {
    if gz { err(format!("corrupt or truncated gzip stream: {e}")) } else { err(e.to_string()) }
}
