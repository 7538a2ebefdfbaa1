//! Int8 GEMV: symmetric per-row int8 weights times dynamically quantized int8 activations,
//! accumulated in i32, then rescaled to f32.

use super::isa::Isa;
use crate::error::{QuantError, Result};
use crate::scheme::round_half_away;
use deepcompress_core::ops::worth_parallel;
use ndarray::ArrayView2;
use rayon::prelude::*;

/// A weight matrix `[rows, cols]` as symmetric int8 (codes `-127..=127`, one f32 scale per
/// row), laid out row-major for the dot-product kernel.
///
/// ```
/// use deepcompress_quant::kernels::Int8Matrix;
/// use ndarray::array;
/// let w = array![[1.0_f32, -2.0, 0.5], [0.0, 4.0, -4.0]];
/// let q = Int8Matrix::from_f32(w.view())?;
/// let y = q.gemv(&[1.0, 1.0, 2.0])?;
/// // Exact: 1 - 2 + 1 = 0 and 0 + 4 - 8 = -4, up to the int8 rounding of both operands.
/// assert!((y[0] - 0.0).abs() < 0.05 && (y[1] + 4.0).abs() < 0.05);
/// assert_eq!(q.storage_bits(), 6 * 8 + 2 * 32);
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Int8Matrix {
    rows: usize,
    cols: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    /// The codes in the GEMM's tile layout, built on the first batched product (GEMV-only
    /// users never pay its memory).
    gemm_layout: std::sync::OnceLock<super::gemm_i8::PackedWeights>,
}

impl PartialEq for Int8Matrix {
    /// Equal codes and scales; whether the GEMM layout was built does not matter.
    fn eq(&self, o: &Self) -> bool {
        (self.rows, self.cols, &self.data, &self.scales) == (o.rows, o.cols, &o.data, &o.scales)
    }
}

impl Int8Matrix {
    /// Quantizes `w` row by row (round to nearest, scale `max|row| / 127`).
    /// NaN or infinite weights are refused.
    pub fn from_f32(w: ArrayView2<f32>) -> Result<Self> {
        super::check_weights(w)?;
        let (rows, cols) = w.dim();
        let mut data = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(rows);
        for row in w.rows() {
            let m = row.iter().fold(0.0_f32, |a, v| a.max(v.abs()));
            let scale = if m == 0.0 { 1.0 } else { m / 127.0 };
            data.extend(row.iter().map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8));
            scales.push(scale);
        }
        Ok(Self { rows, cols, data, scales, gemm_layout: std::sync::OnceLock::new() })
    }

    /// `(rows, cols)`.
    pub fn dim(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// Storage: one byte per weight and an f32 scale per row.
    pub fn storage_bits(&self) -> u64 {
        8 * self.data.len() as u64 + 32 * self.scales.len() as u64
    }

    /// The weights decoded to f32 (what the kernel multiplies by).
    pub fn to_f32(&self) -> ndarray::Array2<f32> {
        ndarray::Array2::from_shape_fn((self.rows, self.cols), |(i, j)| {
            self.data[i * self.cols + j] as f32 * self.scales[i]
        })
    }

    /// The codes, row-major `[rows, cols]`, each within `-127..=127`.
    pub fn codes(&self) -> &[i8] {
        &self.data
    }

    /// One scale per row.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Exact integer products with `n` int8 input rows (`x` is `[n, cols]` row-major, any
    /// code including -128): `[n, rows]` row-major, `Σ_k x[i, k] · codes[o, k]`.
    pub fn matmul_i32(&self, x: &[i8], n: usize) -> Result<Vec<i32>> {
        if x.len() != n * self.cols {
            return Err(QuantError::param(
                "input length",
                x.len(),
                format!("must be {n} rows x {} columns", self.cols),
            ));
        }
        let packed = self
            .gemm_layout
            .get_or_init(|| super::gemm_i8::PackedWeights::new(&self.data, self.rows, self.cols));
        Ok(super::gemm_i8::gemm_i32(packed, self.rows, x, n, self.cols))
    }

    /// `Y = X Wᵀ` for a batch `x: [n, cols]` (a Linear's forward): `x` is quantized to
    /// int8 with one scale, multiplied exactly in i32 ([`Int8Matrix::matmul_i32`]) and
    /// rescaled per row.
    ///
    /// ```
    /// use deepcompress_quant::kernels::Int8Matrix;
    /// use ndarray::array;
    /// let q = Int8Matrix::from_f32(array![[1.0_f32, -2.0], [0.5, 0.5]].view())?;
    /// let y = q.gemm(array![[1.0_f32, 1.0], [2.0, 0.0]].view())?;
    /// assert!((y[[0, 0]] + 1.0).abs() < 0.05 && (y[[1, 1]] - 1.0).abs() < 0.05);
    /// # Ok::<(), deepcompress_quant::QuantError>(())
    /// ```
    pub fn gemm(&self, x: ndarray::ArrayView2<f32>) -> Result<ndarray::Array2<f32>> {
        let n = x.nrows();
        if x.ncols() != self.cols {
            return Err(QuantError::param(
                "input columns",
                x.ncols(),
                format!("must equal the {} columns", self.cols),
            ));
        }
        let owned: Vec<f32>;
        let flat = match x.as_slice() {
            Some(s) => s,
            None => {
                owned = x.iter().copied().collect();
                &owned
            }
        };
        let (xq, sx) = quantize_activations(flat)?;
        let acc = self.matmul_i32(&xq, n)?;
        let rows = self.rows;
        let mut out = vec![0.0_f32; n * rows];
        let rescale = |(y, a): (&mut [f32], &[i32])| {
            for ((yo, &v), &s) in y.iter_mut().zip(a).zip(&self.scales) {
                *yo = v as f32 * s * sx;
            }
        };
        let width = rows.max(1);
        if worth_parallel(n * rows) {
            out.par_chunks_mut(width).zip(acc.par_chunks(width)).for_each(rescale);
        } else {
            out.chunks_mut(width).zip(acc.chunks(width)).for_each(rescale);
        }
        Ok(ndarray::Array2::from_shape_vec((n, rows), out).expect("n x rows values"))
    }

    /// `y = W x`: `x` is quantized to int8 with one scale (`max|x| / 127`), each row's dot
    /// product is accumulated exactly in i32 and rescaled. Rows run in parallel.
    pub fn gemv(&self, x: &[f32]) -> Result<Vec<f32>> {
        super::check_input(x, self.cols)?;
        let (xq, sx) = quantize_activations(x)?;
        let dot = dot_fn();
        let mut y = vec![0.0_f32; self.rows];
        let cols = self.cols.max(1);
        y.par_iter_mut()
            .zip(self.data.par_chunks(cols))
            .zip(self.scales.par_iter())
            .with_min_len(64)
            .for_each(|((yi, row), &s)| *yi = dot(row, &xq) as f32 * s * sx);
        Ok(y)
    }
}

/// Symmetric int8 quantization of activations: codes `-127..=127` and the scale
/// `max|x| / 127` (1 for an all-zero input). NaN or infinity is refused.
///
/// ```
/// use deepcompress_quant::kernels::quantize_activations;
/// let (q, s) = quantize_activations(&[0.5, -1.0, 0.0])?;
/// assert_eq!(q, vec![64, -127, 0]);
/// assert!((s - 1.0 / 127.0).abs() < 1e-9);
/// assert!(quantize_activations(&[f32::NAN]).is_err());
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
pub fn quantize_activations(x: &[f32]) -> Result<(Vec<i8>, f32)> {
    // Large batches are split over threads (chunks of 2^16 values), small ones are not.
    let parallel = worth_parallel(x.len());
    let scan = |c: &[f32]| {
        c.iter().fold((0.0_f32, true), |(m, ok), v| (m.max(v.abs()), ok & v.is_finite()))
    };
    let (m, finite) = if parallel {
        x.par_chunks(1 << 16).map(scan).reduce(|| (0.0, true), |a, b| (a.0.max(b.0), a.1 & b.1))
    } else {
        scan(x)
    };
    if !finite {
        return Err(QuantError::NonFinite { what: "the activations".into() });
    }
    let s = if m == 0.0 { 1.0 } else { m / 127.0 };
    let code = |v: &f32| round_to_code(*v / s);
    let q = if parallel {
        x.par_iter().with_min_len(1 << 16).map(code).collect()
    } else {
        x.iter().map(code).collect()
    };
    Ok((q, s))
}

/// `v.round().clamp(-127, 127)`: clamping first is the same for integer bounds.
fn round_to_code(v: f32) -> i8 {
    round_half_away(v.clamp(-127.0, 127.0)) as i8
}

type DotFn = fn(&[i8], &[i8]) -> i32;

/// The fastest dot product this CPU supports.
fn dot_fn() -> DotFn {
    dot_for(Isa::detect())
}

/// The dot product for an instruction set; the caller makes sure the CPU has it.
fn dot_for(isa: Isa) -> DotFn {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => dot_avx512vnni_safe,
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => dot_avxvnni_safe,
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => dot_avx2_safe,
        _ => dot_portable,
    }
}

/// Plain i32 accumulation; the compiler vectorises it with whatever the target has.
fn dot_portable(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

/// Stamps out a SIMD dot product around one multiply-accumulate primitive of
/// [`super::isa`] (`acc(sum, a, b)` for any signed `a` and `b` within ±127), and its safe
/// wrapper.
macro_rules! simd_dot {
    ($safe:ident, $name:ident, $features:literal, $acc:path) => {
        #[cfg(target_arch = "x86_64")]
        fn $safe(a: &[i8], b: &[i8]) -> i32 {
            // SAFETY: only handed out for an `Isa` that was detected at run time (or, in
            // tests, checked before use).
            unsafe { $name(a, b) }
        }

        /// 32 products per step, one horizontal sum at the end.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(a: &[i8], b: &[i8]) -> i32 {
            use std::arch::x86_64::*;
            let n = a.len().min(b.len());
            let chunks = n / 32;
            // SAFETY: every load reads 32 bytes at offset 32 * i < 32 * chunks <= n of both
            // slices.
            unsafe {
                let mut acc = _mm256_setzero_si256();
                for i in 0..chunks {
                    let va = _mm256_loadu_si256(a.as_ptr().add(32 * i) as *const __m256i);
                    let vb = _mm256_loadu_si256(b.as_ptr().add(32 * i) as *const __m256i);
                    acc = $acc(acc, va, vb);
                }
                let mut lanes = [0i32; 8];
                _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc);
                lanes.iter().sum::<i32>() + dot_portable(&a[32 * chunks..n], &b[32 * chunks..n])
            }
        }
    };
}

simd_dot!(dot_avx2_safe, dot_avx2, "avx2", super::isa::dot_acc_avx2);
simd_dot!(dot_avxvnni_safe, dot_avxvnni, "avx2,avxvnni", super::isa::dot_acc_avxvnni);
simd_dot!(
    dot_avx512vnni_safe,
    dot_avx512vnni,
    "avx2,avx512vnni,avx512vl",
    super::isa::dot_acc_avx512vnni
);
#[cfg(test)]
simd_dot!(dot_emulated_vnni_safe, dot_emulated_vnni, "avx2", super::isa::dot_acc_emulated);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_half_away_from_zero_like_f32_round() {
        let mut v = -130.0_f32;
        while v <= 130.0 {
            for x in [
                v,
                v + 0.5,
                f32::from_bits(v.to_bits() + 1),
                f32::from_bits(v.to_bits().max(1) - 1),
            ] {
                assert_eq!(round_to_code(x), x.round().clamp(-127.0, 127.0) as i8, "{x}");
            }
            v += 0.25;
        }
        for x in [0.49999997_f32, -0.49999997, 0.5, -0.5, 1e-30, -0.0] {
            assert_eq!(round_to_code(x), x.round() as i8, "{x}");
        }
    }

    #[test]
    fn large_inputs_quantize_as_small_ones_do() {
        // Above the chunk size the scan and the rounding run in parallel.
        let x: Vec<f32> =
            (0..200_003).map(|i| ((i * 7919) % 10_007) as f32 / 331.0 - 15.0).collect();
        let (q, s) = quantize_activations(&x).expect("finite");
        let m = x.iter().fold(0.0_f32, |a, v| a.max(v.abs()));
        assert_eq!(s, m / 127.0);
        assert!(q.iter().zip(&x).all(|(&c, &v)| c == (v / s).round().clamp(-127.0, 127.0) as i8));
        let mut bad = x.clone();
        bad[150_001] = f32::NAN;
        assert!(quantize_activations(&bad).is_err());
    }

    #[test]
    fn simd_and_portable_dots_agree_exactly() {
        let mut dots: Vec<(&str, DotFn)> = vec![("detected", dot_fn())];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            dots.push(("avx2", dot_for(Isa::Avx2)));
            dots.push(("emulated vnni", dot_emulated_vnni_safe));
        }
        for n in [0usize, 1, 31, 32, 33, 100, 257, 4096] {
            let a: Vec<i8> = (0..n).map(|i| ((i * 37 % 256) as i32 - 128) as i8).collect();
            let b: Vec<i8> = (0..n).map(|i| ((i * 91 % 255) as i32 - 127) as i8).collect();
            for (name, dot) in &dots {
                assert_eq!(dot(&a, &b), dot_portable(&a, &b), "{name}, n = {n}");
            }
            let (lo, hi) = (vec![-128i8; n], vec![127i8; n]);
            for (name, dot) in &dots {
                assert_eq!(dot(&lo, &hi), -128 * 127 * n as i32, "{name} at the extremes, n = {n}");
            }
        }
    }
}
