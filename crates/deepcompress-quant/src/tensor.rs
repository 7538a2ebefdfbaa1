//! [`QuantTensor`]: a weight stored as packed low-bit codes with per-block scales.

use crate::error::{QuantError, Result};
use crate::pack::Packed;
use crate::scheme::{Granularity, QuantScheme, Rounding};
use crate::streamed::streamed_matmul;
use deepcompress_core::ops::worth_parallel;
use deepcompress_core::tensor::Tensor;
use ndarray::{Array2, ArrayD, ArrayView2, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::any::Any;

/// A uniformly quantized tensor: `b`-bit codes packed back to back, one `f32` scale per
/// block and, for affine schemes, one `b`-bit zero point per block.
///
/// [`Tensor::storage_bits`] counts all of it exactly (the packed codes rounded up to whole
/// bytes, the scales and the zero points); [`Tensor::to_dense`] decodes.
///
/// Blocks whose values are all equal are stored exactly (scale `|c|`, code `±1`), so a
/// constant tensor round-trips without error and without a division by zero.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::{QuantScheme, QuantTensor};
/// use ndarray::{array, ArrayD};
///
/// let w = array![[0.5_f32, -1.0, 0.25, 0.0], [2.0, 1.0, -2.0, 0.5]].into_dyn();
/// let q = QuantTensor::quantize(&w, &QuantScheme::new(4))?;
/// assert_eq!(q.encoding(), "int4");
/// // 8 codes of 4 bits, and one f32 scale per row.
/// assert_eq!(q.storage_bits(), 8 * 4 + 2 * 32);
/// let back = q.to_dense();
/// for (a, b) in w.iter().zip(back.iter()) {
///     assert!((a - b).abs() <= 2.0 / 7.0 / 2.0 + 1e-6); // half a step of row 2
/// }
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct QuantTensor {
    shape: Vec<usize>,
    scheme: QuantScheme,
    codes: Packed,
    scales: Vec<f32>,
    zero_points: Option<Packed>,
}

/// The block layout of a `[rows, cols]` matrix under a granularity.
#[derive(Debug, Clone, Copy)]
struct Blocks {
    rows: usize,
    cols: usize,
    block_rows: usize,
    block_cols: usize,
}

impl Blocks {
    fn new(rows: usize, cols: usize, g: Granularity) -> Self {
        let (block_rows, block_cols) = match g {
            Granularity::PerTensor => (rows.max(1), cols.max(1)),
            Granularity::PerChannel => (1, cols.max(1)),
            Granularity::PerGroup { rows: r, cols: c } => (r, c),
        };
        Self { rows, cols, block_rows, block_cols }
    }

    fn per_row(&self) -> usize {
        self.cols.div_ceil(self.block_cols)
    }

    fn count(&self) -> usize {
        self.rows.div_ceil(self.block_rows) * self.per_row()
    }

    fn of(&self, i: usize, j: usize) -> usize {
        (i / self.block_rows) * self.per_row() + j / self.block_cols
    }
}

/// Scale and zero point of one block.
#[derive(Debug, Clone, Copy)]
struct Params {
    scale: f32,
    zero: i32,
}

impl QuantTensor {
    /// Quantizes `values` (any shape; viewed as `[shape[0], rest]`) under `scheme`.
    ///
    /// Errors: an invalid scheme, NaN or infinite values.
    pub fn quantize(values: &ArrayD<f32>, scheme: &QuantScheme) -> Result<Self> {
        scheme.check()?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: "the tensor to quantize".into() });
        }
        let shape = values.shape().to_vec();
        let m = as_matrix(values);
        let blocks = Blocks::new(m.nrows(), m.ncols(), scheme.granularity);
        let mut lo = vec![f32::INFINITY; blocks.count()];
        let mut hi = vec![f32::NEG_INFINITY; blocks.count()];
        for ((i, j), &v) in m.indexed_iter() {
            let b = blocks.of(i, j);
            lo[b] = lo[b].min(v);
            hi[b] = hi[b].max(v);
        }
        let params: Vec<Params> =
            lo.iter().zip(&hi).map(|(&l, &h)| block_params(l, h, scheme)).collect();
        let mut rng = match scheme.rounding {
            Rounding::Stochastic { seed } => Some(ChaCha8Rng::seed_from_u64(seed)),
            Rounding::Nearest => None,
        };
        let (min_code, max_code) = code_range(scheme);
        let offset = if scheme.symmetric { 1i32 << (scheme.bits - 1) } else { 0 };
        let codes: Vec<u16> = m
            .indexed_iter()
            .map(|((i, j), &v)| {
                let p = params[blocks.of(i, j)];
                let x = v / p.scale;
                let r = match rng.as_mut() {
                    Some(rng) => (x + rng.random::<f32>()).floor(),
                    None => x.round(),
                };
                let q = (r as i32 + p.zero).clamp(min_code, max_code);
                (q + offset) as u16
            })
            .collect();
        let zero_points = if scheme.symmetric {
            None
        } else {
            let z: Vec<u16> = params.iter().map(|p| p.zero as u16).collect();
            Some(Packed::pack(&z, scheme.bits)?)
        };
        Ok(Self {
            shape,
            scheme: *scheme,
            codes: Packed::pack(&codes, scheme.bits)?,
            scales: params.iter().map(|p| p.scale).collect(),
            zero_points,
        })
    }

    /// A tensor from codes chosen elsewhere, row-major over the `[shape[0], rest]` view,
    /// with one scale (and, for an affine scheme, one zero point) per block of the
    /// scheme's granularity. This is how quantization-aware training stores exactly the
    /// codes it simulated with its learned steps, and how GPTQ stores the codes its
    /// error-compensating updates chose. Decoding gives `code * scale` (symmetric) or
    /// `(code - zero) * scale` (affine).
    ///
    /// Symmetric codes may use the full signed range `-2^(b-1) ..= 2^(b-1) - 1`; affine
    /// codes and zero points are in `0 ..= 2^b - 1`. Errors: an invalid scheme, a code or
    /// zero point out of range, zero points given for a symmetric scheme or missing for
    /// an affine one, a wrong number of codes, scales or zero points, or a scale that is
    /// not finite and positive.
    ///
    /// ```
    /// use deepcompress_core::tensor::Tensor;
    /// use deepcompress_quant::{Granularity, QuantScheme, QuantTensor};
    /// let s = QuantScheme::new(4).granularity(Granularity::PerTensor);
    /// let q = QuantTensor::from_codes(&[2, 2], &s, &[-8, 0, 3, 7], vec![0.5], None)?;
    /// assert_eq!(q.to_dense().into_raw_vec_and_offset().0, vec![-4.0, 0.0, 1.5, 3.5]);
    /// assert!(QuantTensor::from_codes(&[2, 2], &s, &[8, 0, 0, 0], vec![0.5], None).is_err());
    /// let a = s.asymmetric();
    /// let q = QuantTensor::from_codes(&[1, 2], &a, &[0, 15], vec![0.1], Some(&[5]))?;
    /// assert!((q.to_dense()[[0, 1]] - 1.0).abs() < 1e-6);
    /// # Ok::<(), deepcompress_quant::QuantError>(())
    /// ```
    pub fn from_codes(
        shape: &[usize],
        scheme: &QuantScheme,
        codes: &[i32],
        scales: Vec<f32>,
        zero_points: Option<&[i32]>,
    ) -> Result<Self> {
        scheme.check()?;
        let (r, c) = matrix_dims(shape);
        if codes.len() != r * c {
            return Err(QuantError::param(
                "codes",
                codes.len(),
                format!("shape {shape:?} needs {} codes", r * c),
            ));
        }
        let blocks = Blocks::new(r, c, scheme.granularity);
        if scales.len() != blocks.count() {
            return Err(QuantError::param(
                "scales",
                scales.len(),
                format!("{:?} over {shape:?} has {} blocks", scheme.granularity, blocks.count()),
            ));
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(QuantError::param("scale", s, "must be finite and > 0"));
        }
        let (lo, hi, offset) = if scheme.symmetric {
            let half = 1i32 << (scheme.bits - 1);
            (-half, half - 1, half)
        } else {
            (0, scheme.levels(), 0)
        };
        let in_range = |what: &str, q: i32| {
            if (lo..=hi).contains(&q) {
                Ok((q + offset) as u16)
            } else {
                Err(QuantError::param(
                    what,
                    q,
                    format!("a {}-bit code of this scheme is in [{lo}, {hi}]", scheme.bits),
                ))
            }
        };
        let stored = codes.iter().map(|&q| in_range("code", q)).collect::<Result<Vec<u16>>>()?;
        let zero_points = match (scheme.symmetric, zero_points) {
            (true, None) => None,
            (false, Some(z)) if z.len() == blocks.count() => {
                let z = z.iter().map(|&q| in_range("zero point", q)).collect::<Result<Vec<_>>>()?;
                Some(Packed::pack(&z, scheme.bits)?)
            }
            (symmetric, z) => {
                return Err(QuantError::param(
                    "zero points",
                    z.map_or(0, |z| z.len()),
                    if symmetric {
                        "a symmetric scheme has none".to_string()
                    } else {
                        format!("an affine scheme needs one per block ({})", blocks.count())
                    },
                ));
            }
        };
        Ok(Self {
            shape: shape.to_vec(),
            scheme: *scheme,
            codes: Packed::pack(&stored, scheme.bits)?,
            scales,
            zero_points,
        })
    }

    /// The scheme used.
    pub fn scheme(&self) -> &QuantScheme {
        &self.scheme
    }

    /// One scale per block.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The packed codes.
    pub fn codes(&self) -> &Packed {
        &self.codes
    }

    /// The largest scale: the step of the coarsest block. Round-to-nearest errors are at
    /// most half of each block's own scale.
    pub fn max_scale(&self) -> f32 {
        self.scales.iter().copied().fold(0.0, f32::max)
    }

    /// The scale of the block holding matrix element `(i, j)` (`[shape[0], rest]` view).
    pub fn scale_at(&self, i: usize, j: usize) -> f32 {
        let (r, c) = matrix_dims(&self.shape);
        self.scales[Blocks::new(r, c, self.scheme.granularity).of(i, j)]
    }

    fn decode(&self) -> Array2<f32> {
        let (r, c) = matrix_dims(&self.shape);
        let zeros = self.zero_points.as_ref().map(Packed::unpack);
        let mut out = vec![0.0_f32; r * c];
        let rows_per_task = (ROW_BLOCK_VALUES / c.max(1)).max(1);
        let decode = |(b, chunk): (usize, &mut [f32])| {
            let r0 = b * rows_per_task;
            self.decode_rows(r0, r0 + chunk.len() / c.max(1), zeros.as_deref(), chunk);
        };
        if worth_parallel(r * c) {
            out.par_chunks_mut(rows_per_task * c.max(1)).enumerate().for_each(decode);
        } else {
            out.chunks_mut(rows_per_task * c.max(1)).enumerate().for_each(decode);
        }
        Array2::from_shape_vec((r, c), out).expect("r x c values")
    }

    /// Rows `r0..r1` of the `[shape[0], rest]` view decoded into `out` (row-major), one
    /// run of codes per block segment; `zeros` are the unpacked zero points.
    fn decode_rows(&self, r0: usize, r1: usize, zeros: Option<&[u16]>, out: &mut [f32]) {
        let (r, c) = matrix_dims(&self.shape);
        let blocks = Blocks::new(r, c, self.scheme.granularity);
        let offset = if self.scheme.symmetric { 1i32 << (self.scheme.bits - 1) } else { 0 };
        for (i, row) in (r0..r1).zip(out.chunks_exact_mut(c.max(1))) {
            let mut j = 0;
            while j < c {
                let end = ((j / blocks.block_cols + 1) * blocks.block_cols).min(c);
                let b = blocks.of(i, j);
                let zero = offset + zeros.map_or(0, |z| z[b] as i32);
                let scale = self.scales[b];
                self.codes
                    .decode_with(i * c + j, &mut row[j..end], |q| (q as i32 - zero) as f32 * scale);
                j = end;
            }
        }
    }
}

/// Decoded values per task of [`QuantTensor::decode`] (256 KiB of f32).
const ROW_BLOCK_VALUES: usize = 1 << 16;

/// `[shape[0], rest]` (a scalar or vector is one row).
fn matrix_dims(shape: &[usize]) -> (usize, usize) {
    match shape {
        [] => (1, 1),
        [n] => (1, *n),
        [r, ..] => (*r, shape[1..].iter().product()),
    }
}

fn as_matrix(values: &ArrayD<f32>) -> Array2<f32> {
    let (r, c) = matrix_dims(values.shape());
    Array2::from_shape_vec((r, c), values.iter().copied().collect()).expect("same element count")
}

/// Smallest and largest signed code before the offset.
fn code_range(s: &QuantScheme) -> (i32, i32) {
    if s.symmetric { (-s.qmax_symmetric(), s.qmax_symmetric()) } else { (0, s.levels()) }
}

/// Scale and zero point of a block with values in `[lo, hi]`.
fn block_params(lo: f32, hi: f32, s: &QuantScheme) -> Params {
    if lo == hi {
        // A constant block: code ±1 (or the zero point) times |c| is exactly c.
        let c = lo;
        return match (s.symmetric, c < 0.0) {
            _ if c == 0.0 => Params { scale: 1.0, zero: 0 },
            (true, _) => Params { scale: c.abs(), zero: 0 },
            (false, false) => Params { scale: c, zero: 0 },
            (false, true) => Params { scale: -c, zero: 1 },
        };
    }
    if s.symmetric {
        let m = lo.abs().max(hi.abs());
        Params { scale: m / s.qmax_symmetric() as f32, zero: 0 }
    } else {
        // The range always holds zero, so that zero (padding, pruned weights) is exact.
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = (hi - lo) / s.levels() as f32;
        let zero = (-lo / scale).round().clamp(0.0, s.levels() as f32) as i32;
        // Rounding the zero point shifts the grid by up to half a step, which can leave an
        // end of the range outside it; widen the step so both ends stay representable.
        let mut scale = scale;
        if zero < s.levels() {
            scale = scale.max(hi / (s.levels() - zero) as f32);
        }
        if zero > 0 {
            scale = scale.max(-lo / zero as f32);
        }
        Params { scale, zero }
    }
}

/// The scale and zero point [`QuantTensor::quantize`] gives a block with values in
/// `[lo, hi]` (crate-internal: GPTQ fits its groups with it).
pub(crate) fn fit_block(lo: f32, hi: f32, s: &QuantScheme) -> (f32, i32) {
    let p = block_params(lo, hi, s);
    (p.scale, p.zero)
}

/// Smallest and largest code of a scheme, zero point included (crate-internal).
pub(crate) fn code_bounds(s: &QuantScheme) -> (i32, i32) {
    code_range(s)
}

impl Tensor for QuantTensor {
    fn encoding(&self) -> &'static str {
        match self.scheme.bits {
            2 => "int2",
            3 => "int3",
            4 => "int4",
            5 => "int5",
            6 => "int6",
            7 => "int7",
            8 => "int8",
            _ => "int16",
        }
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn storage_bits(&self) -> u64 {
        self.codes.storage_bits()
            + 32 * self.scales.len() as u64
            + self.zero_points.as_ref().map_or(0, Packed::storage_bits)
    }

    fn to_dense(&self) -> ArrayD<f32> {
        self.decode()
            .into_shape_with_order(IxDyn(&self.shape))
            .expect("decoded matrix has the tensor's element count")
    }

    fn matmul(&self, x: ArrayView2<f32>) -> deepcompress_core::Result<Array2<f32>> {
        let (r, c) = matrix_dims(&self.shape);
        if x.nrows() != c {
            return Err(deepcompress_core::CoreError::shape(
                "QuantTensor matmul input",
                format!("[{c}, n]"),
                x.shape(),
            ));
        }
        let zeros = self.zero_points.as_ref().map(Packed::unpack);
        Ok(streamed_matmul(r, c, x, |r0, r1, buf| self.decode_rows(r0, r1, zeros.as_deref(), buf)))
    }

    fn clone_box(&self) -> Box<dyn Tensor> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
