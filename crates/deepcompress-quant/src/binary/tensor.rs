//! Bit-packed binary and ternary weight storage: [`BinaryTensor`] and [`TernaryTensor`].

use crate::error::{QuantError, Result};
use crate::pack::Packed;
use crate::streamed::streamed_matmul;
use deepcompress_core::tensor::Tensor;
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use std::any::Any;

/// `[shape[0], rest]` (a scalar or vector is one row).
fn matrix_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [r, ..] => (*r, shape[1..].iter().product()),
    }
}

/// Checks the scale count (1, or one per row) and values (finite, `>= 0`).
fn check_scales(shape: &[usize], scales: &[f32]) -> Result<usize> {
    let (rows, _) = matrix_dims(shape);
    if scales.len() != 1 && scales.len() != rows {
        return Err(QuantError::param(
            "scales",
            scales.len(),
            format!("shape {shape:?} takes 1 scale or one per output channel ({rows})"),
        ));
    }
    if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(QuantError::param("scale", s, "must be finite and >= 0"));
    }
    Ok(rows)
}

fn check_matmul(encoding: &str, cols: usize, x: &ArrayView2<f32>) -> deepcompress_core::Result<()> {
    if x.nrows() != cols {
        return Err(deepcompress_core::CoreError::shape(
            format!("{encoding} matmul input"),
            format!("[{cols}, n]"),
            x.shape(),
        ));
    }
    Ok(())
}

/// `W x` with the rows of `W` decoded block by block from `codes` (one per weight, rows
/// of `cols`): weight `= value(code, scale of its row)`. On a CPU a GEMM on the decoded
/// block is faster than adding and subtracting input rows one weight at a time.
fn decoded_product(
    codes: &Packed,
    (rows, cols): (usize, usize),
    scales: &[f32],
    x: ArrayView2<f32>,
    value: impl Fn(u32, f32) -> f32 + Sync,
) -> Array2<f32> {
    streamed_matmul(rows, cols, x, |r0, r1, buf| {
        for (r, row) in (r0..r1).zip(buf.chunks_exact_mut(cols.max(1))) {
            let s = if scales.len() == 1 { scales[0] } else { scales[r] };
            codes.decode_with(r * cols, row, |c| value(c, s));
        }
    })
}

/// Binary weights: one sign bit per weight (bit 1 is `+`) and an `f32` scale per tensor or
/// per output channel, `w = α_c · sign`, as trained by BinaryConnect (Courbariaux et al.
/// 2015, arXiv 1511.00363) with XNOR-Net's per-channel scaling (Rastegari et al. 2016,
/// arXiv 1603.05279). [`Tensor::storage_bits`] is the packed bits (whole bytes) plus
/// 32 per scale; [`Tensor::matmul`] decodes blocks of rows to `±α` in cache and
/// multiplies them there, so the dense weight is never built.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::BinaryTensor;
/// use ndarray::array;
/// let b = BinaryTensor::new(&[2, 3], &[true, false, true, false, false, true], vec![0.5, 2.0])?;
/// assert_eq!(b.to_dense(), array![[0.5f32, -0.5, 0.5], [-2.0, -2.0, 2.0]].into_dyn());
/// assert_eq!(b.storage_bits(), 8 + 2 * 32); // 6 bits in one byte, two scales
/// let y = b.matmul(array![[1.0f32], [2.0], [3.0]].view())?;
/// assert_eq!(y, array![[1.0f32], [0.0]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BinaryTensor {
    shape: Vec<usize>,
    signs: Packed,
    scales: Vec<f32>,
}

impl BinaryTensor {
    /// From signs (row-major over `[shape[0], rest]`, `true` for `+`) and 1 or
    /// `shape[0]` scales. Errors: a wrong count, a negative or non-finite scale.
    pub fn new(shape: &[usize], signs: &[bool], scales: Vec<f32>) -> Result<Self> {
        check_scales(shape, &scales)?;
        let n: usize = shape.iter().product();
        if signs.len() != n {
            return Err(QuantError::param(
                "signs",
                signs.len(),
                format!("shape {shape:?} has {n} weights"),
            ));
        }
        let codes: Vec<u16> = signs.iter().map(|&s| u16::from(s)).collect();
        Ok(Self { shape: shape.to_vec(), signs: Packed::pack(&codes, 1)?, scales })
    }

    /// The scales (one, or one per output channel).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The packed sign bits.
    pub fn signs(&self) -> &Packed {
        &self.signs
    }
}

impl Tensor for BinaryTensor {
    fn encoding(&self) -> &'static str {
        "binary"
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn storage_bits(&self) -> u64 {
        self.signs.storage_bits() + 32 * self.scales.len() as u64
    }

    fn to_dense(&self) -> ArrayD<f32> {
        let (_, cols) = matrix_dims(&self.shape);
        let v: Vec<f32> = self
            .signs
            .unpack()
            .iter()
            .enumerate()
            .map(|(k, &b)| {
                let s = if self.scales.len() == 1 { self.scales[0] } else { self.scales[k / cols] };
                if b == 1 { s } else { -s }
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(&self.shape), v).expect("one sign per weight")
    }

    fn matmul(&self, x: ArrayView2<f32>) -> deepcompress_core::Result<Array2<f32>> {
        let dims = matrix_dims(&self.shape);
        check_matmul("binary", dims.1, &x)?;
        Ok(decoded_product(&self.signs, dims, &self.scales, x, |b, s| if b == 1 { s } else { -s }))
    }

    fn clone_box(&self) -> Box<dyn Tensor> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Ternary weights: a 2-bit code per weight (`0` zero, `1` plus, `2` minus) and an `f32`
/// scale per tensor or per output channel, `w = α_c · t` with `t ∈ {-1, 0, 1}`, as
/// trained by Ternary Weight Networks (Li et al. 2016, arXiv 1605.04711).
/// [`Tensor::storage_bits`] is the packed codes (whole bytes) plus 32 per scale;
/// [`Tensor::matmul`] decodes blocks of rows in cache and multiplies them there.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::TernaryTensor;
/// use ndarray::array;
/// let t = TernaryTensor::new(&[1, 4], &[1, 0, -1, 1], vec![0.25])?;
/// assert_eq!(t.to_dense(), array![[0.25f32, 0.0, -0.25, 0.25]].into_dyn());
/// assert_eq!(t.storage_bits(), 8 + 32); // four 2-bit codes in one byte, one scale
/// assert_eq!(t.nonzeros(), 3);
/// assert!(TernaryTensor::new(&[1, 1], &[2], vec![1.0]).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TernaryTensor {
    shape: Vec<usize>,
    codes: Packed,
    scales: Vec<f32>,
}

impl TernaryTensor {
    /// From values in `{-1, 0, 1}` (row-major over `[shape[0], rest]`) and 1 or
    /// `shape[0]` scales. Errors: another value, a wrong count, a bad scale.
    pub fn new(shape: &[usize], values: &[i8], scales: Vec<f32>) -> Result<Self> {
        check_scales(shape, &scales)?;
        let n: usize = shape.iter().product();
        if values.len() != n {
            return Err(QuantError::param(
                "values",
                values.len(),
                format!("shape {shape:?} has {n} weights"),
            ));
        }
        let mut codes = Vec::with_capacity(n);
        for &v in values {
            codes.push(match v {
                0 => 0u16,
                1 => 1,
                -1 => 2,
                other => {
                    return Err(QuantError::param("ternary value", other, "must be -1, 0 or 1"));
                }
            });
        }
        Ok(Self { shape: shape.to_vec(), codes: Packed::pack(&codes, 2)?, scales })
    }

    /// The scales (one, or one per output channel).
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The packed 2-bit codes.
    pub fn codes(&self) -> &Packed {
        &self.codes
    }

    fn sign(c: u16) -> i8 {
        match c {
            1 => 1,
            2 => -1,
            _ => 0,
        }
    }
}

impl Tensor for TernaryTensor {
    fn encoding(&self) -> &'static str {
        "ternary"
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn storage_bits(&self) -> u64 {
        self.codes.storage_bits() + 32 * self.scales.len() as u64
    }

    fn to_dense(&self) -> ArrayD<f32> {
        let (_, cols) = matrix_dims(&self.shape);
        let v: Vec<f32> = self
            .codes
            .unpack()
            .iter()
            .enumerate()
            .map(|(k, &c)| {
                let s = if self.scales.len() == 1 { self.scales[0] } else { self.scales[k / cols] };
                f32::from(Self::sign(c)) * s
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(&self.shape), v).expect("one code per weight")
    }

    fn matmul(&self, x: ArrayView2<f32>) -> deepcompress_core::Result<Array2<f32>> {
        let dims = matrix_dims(&self.shape);
        check_matmul("ternary", dims.1, &x)?;
        Ok(decoded_product(&self.codes, dims, &self.scales, x, |c, s| {
            f32::from(Self::sign(c as u16)) * s
        }))
    }

    fn clone_box(&self) -> Box<dyn Tensor> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
