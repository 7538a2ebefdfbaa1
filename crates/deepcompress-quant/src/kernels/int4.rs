//! 4-bit GEMV: weights stored as 4-bit codes (two per byte) with one f32 scale per group of
//! 64, unpacked on the fly and multiplied by int8 activations with i32 accumulation.

use super::int8::quantize_activations;
use crate::error::Result;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// Weights per group: one scale each, 32 packed bytes (one AVX2 register).
pub const GROUP: usize = 64;

/// A weight matrix `[rows, cols]` as symmetric 4-bit codes (`-7..=7`) with one f32 scale
/// per group of [`GROUP`] weights of a row. Rows are padded with zeros to whole groups.
///
/// Within a group, byte `k` holds weight `k` in its low nibble and weight `k + 32` in its
/// high nibble, so that one AVX2 load unpacks into two runs of 32 consecutive weights.
///
/// ```
/// use deepcompress_quant::kernels::Int4Matrix;
/// use ndarray::array;
/// let w = array![[0.7_f32, -0.7, 0.35], [1.0, 0.0, -1.0]];
/// let q = Int4Matrix::from_f32(w.view())?;
/// let y = q.gemv(&[1.0, 1.0, 1.0])?;
/// assert!((y[0] - 0.35).abs() < 0.1 && y[1].abs() < 0.1);
/// // One padded group per row: 32 bytes and one f32 scale.
/// assert_eq!(q.storage_bits(), 2 * (32 * 8 + 32));
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Int4Matrix {
    rows: usize,
    cols: usize,
    groups: usize,
    packed: Vec<u8>,
    scales: Vec<f32>,
}

impl Int4Matrix {
    /// Quantizes `w` group by group (round to nearest, scale `max|group| / 7`).
    /// NaN or infinite weights are refused.
    pub fn from_f32(w: ArrayView2<f32>) -> Result<Self> {
        super::check_weights(w)?;
        let (rows, cols) = w.dim();
        let groups = cols.div_ceil(GROUP);
        let mut packed = vec![0u8; rows * groups * GROUP / 2];
        let mut scales = Vec::with_capacity(rows * groups);
        for (i, row) in w.rows().into_iter().enumerate() {
            for g in 0..groups {
                let at = |k: usize| row.get(g * GROUP + k).copied().unwrap_or(0.0);
                let m = (0..GROUP).fold(0.0_f32, |a, k| a.max(at(k).abs()));
                let scale = if m == 0.0 { 1.0 } else { m / 7.0 };
                scales.push(scale);
                let code = |k: usize| ((at(k) / scale).round().clamp(-7.0, 7.0) as i8 + 8) as u8;
                let base = (i * groups + g) * GROUP / 2;
                for k in 0..GROUP / 2 {
                    packed[base + k] = code(k) | (code(k + GROUP / 2) << 4);
                }
            }
        }
        Ok(Self { rows, cols, groups, packed, scales })
    }

    /// `(rows, cols)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Storage: the packed bytes (padding included) and one f32 scale per group.
    pub fn storage_bits(&self) -> u64 {
        8 * self.packed.len() as u64 + 32 * self.scales.len() as u64
    }

    /// The weights decoded to f32.
    pub fn to_f32(&self) -> ndarray::Array2<f32> {
        ndarray::Array2::from_shape_fn((self.rows, self.cols), |(i, j)| {
            let (g, k) = (j / GROUP, j % GROUP);
            let byte = self.packed[(i * self.groups + g) * GROUP / 2 + k % (GROUP / 2)];
            let nibble = if k < GROUP / 2 { byte & 0x0F } else { byte >> 4 };
            (nibble as i32 - 8) as f32 * self.scales[i * self.groups + g]
        })
    }

    /// `y = W x` with `x` quantized to int8 (one scale); each group's dot product is exact
    /// in i32 and scaled by its group's scale. Rows run in parallel.
    pub fn gemv(&self, x: &[f32]) -> Result<Vec<f32>> {
        super::check_input(x, self.cols)?;
        let (mut xq, sx) = quantize_activations(x)?;
        xq.resize(self.groups * GROUP, 0);
        let dot = row_dot_fn();
        let row_bytes = self.groups * GROUP / 2;
        let mut y = vec![0.0_f32; self.rows];
        if row_bytes == 0 {
            return Ok(y);
        }
        y.par_iter_mut()
            .zip(self.packed.par_chunks(row_bytes))
            .zip(self.scales.par_chunks(self.groups))
            .with_min_len(64)
            .for_each(|((yi, row), scales)| *yi = dot(row, scales, &xq) * sx);
        Ok(y)
    }
}

/// `Σ_g scale_g · (codes_g · x_g)` over one row's groups.
type RowDot = fn(&[u8], &[f32], &[i8]) -> f32;

fn row_dot_fn() -> RowDot {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return row_dot_avx2_safe;
        }
    }
    row_dot_portable
}

/// One group: 32 bytes of codes against 64 int8 activations, exact in i32.
fn group_dot_portable(bytes: &[u8], x: &[i8]) -> i32 {
    let half = GROUP / 2;
    bytes
        .iter()
        .enumerate()
        .map(|(k, &b)| {
            ((b & 0x0F) as i32 - 8) * x[k] as i32 + ((b >> 4) as i32 - 8) * x[k + half] as i32
        })
        .sum()
}

fn row_dot_portable(row: &[u8], scales: &[f32], x: &[i8]) -> f32 {
    scales
        .iter()
        .enumerate()
        .map(|(g, &s)| {
            group_dot_portable(
                &row[g * GROUP / 2..(g + 1) * GROUP / 2],
                &x[g * GROUP..(g + 1) * GROUP],
            ) as f32
                * s
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
fn row_dot_avx2_safe(row: &[u8], scales: &[f32], x: &[i8]) -> f32 {
    // SAFETY: only returned by `row_dot_fn` after AVX2 and FMA were detected at run time.
    unsafe { row_dot_avx2(row, scales, x) }
}

/// Per group: unpack 64 codes from one register (low nibbles: weights 0..32, high:
/// 32..64), multiply as the int8 kernel does ([`super::isa::madd_i8`]), convert and accumulate
/// `scale ×` it in f32 lanes; one horizontal sum per row.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn row_dot_avx2(row: &[u8], scales: &[f32], x: &[i8]) -> f32 {
    use std::arch::x86_64::*;
    let groups = scales.len();
    assert!(row.len() >= groups * GROUP / 2 && x.len() >= groups * GROUP, "whole groups");
    // SAFETY: the assertion above keeps every 32-byte load in bounds.
    unsafe {
        let nib = _mm256_set1_epi8(0x0F);
        let eight = _mm256_set1_epi8(8);
        let mut acc = _mm256_setzero_ps();
        for (g, &s) in scales.iter().enumerate() {
            let v = _mm256_loadu_si256(row.as_ptr().add(g * GROUP / 2) as *const __m256i);
            let lo = _mm256_sub_epi8(_mm256_and_si256(v, nib), eight);
            let hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), nib), eight);
            let x0 = _mm256_loadu_si256(x.as_ptr().add(g * GROUP) as *const __m256i);
            let x1 = _mm256_loadu_si256(x.as_ptr().add(g * GROUP + 32) as *const __m256i);
            let sum = _mm256_add_epi32(super::isa::madd_i8(lo, x0), super::isa::madd_i8(hi, x1));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_set1_ps(s), acc);
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        lanes.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_and_portable_rows_agree() {
        for seed in 0..20usize {
            let groups = 1 + seed % 3;
            let row: Vec<u8> = (0..32 * groups)
                .map(|k| {
                    (((k * 37 + seed * 11) % 15) as u8 + 1)
                        | ((((k * 13 + seed) % 15) as u8 + 1) << 4)
                })
                .collect();
            let x: Vec<i8> = (0..64 * groups)
                .map(|k| (((k * 91 + seed * 7) % 255) as i32 - 127) as i8)
                .collect();
            let scales: Vec<f32> = (0..groups).map(|g| 0.5 + g as f32).collect();
            let (a, b) = (row_dot_fn()(&row, &scales, &x), row_dot_portable(&row, &scales, &x));
            assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}
