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
        Self::with_max_code(w, 127)
    }

    /// Quantizes `w` row by row to 7-bit codes (`-63..=63`, scale `max|row| / 63`), what
    /// onnxruntime and fbgemm call "reduce range": twice the rounding error of
    /// [`Int8Matrix::from_f32`], and on AVX2 CPUs without VNNI a faster
    /// [`Int8Matrix::gemm`], whose multiplies then need no sign step (see
    /// `docs/benchmarks.md`). The GEMV and VNNI CPUs run at the same speed either way.
    ///
    /// ```
    /// use deepcompress_quant::kernels::Int8Matrix;
    /// use ndarray::array;
    /// let w = array![[1.0_f32, -2.0, 0.5], [0.0, 4.0, -4.0]];
    /// let q = Int8Matrix::from_f32_reduced_range(w.view())?;
    /// assert!(q.codes().iter().all(|c| c.abs() <= 63));
    /// let y = q.gemm(array![[1.0_f32, 1.0, 2.0]].view())?;
    /// assert!((y[[0, 0]] - 0.0).abs() < 0.1 && (y[[0, 1]] + 4.0).abs() < 0.1);
    /// # Ok::<(), deepcompress_quant::QuantError>(())
    /// ```
    pub fn from_f32_reduced_range(w: ArrayView2<f32>) -> Result<Self> {
        Self::with_max_code(w, 63)
    }

    /// Symmetric per-row codes within `±max_code`.
    fn with_max_code(w: ArrayView2<f32>, max_code: u8) -> Result<Self> {
        super::check_weights(w)?;
        let (rows, cols) = w.dim();
        let top = max_code as f32;
        let mut data = Vec::with_capacity(rows * cols);
        let mut scales = Vec::with_capacity(rows);
        for row in w.rows() {
            let m = row.iter().fold(0.0_f32, |a, v| a.max(v.abs()));
            let scale = if m == 0.0 { 1.0 } else { m / top };
            data.extend(row.iter().map(|v| (v / scale).round().clamp(-top, top) as i8));
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
        Ok(self.matmul_map(x, n, |_, v| v))
    }

    /// [`Int8Matrix::matmul_i32`] with `f(o, sum)` applied to each exact sum of weight row
    /// `o` as it is written (a rescale or requantization), with no i32 result in between.
    /// `x` must hold `n` rows.
    pub(crate) fn matmul_map<T: Copy + Default + Send>(
        &self,
        x: &[i8],
        n: usize,
        f: impl Fn(usize, i32) -> T + Sync,
    ) -> Vec<T> {
        debug_assert_eq!(x.len(), n * self.cols);
        super::gemm_i8::gemm_map(self.packed(), self.rows, x, n, self.cols, f)
    }

    /// The codes in the GEMM's layout, packed on first use.
    fn packed(&self) -> &super::gemm_i8::PackedWeights {
        self.gemm_layout
            .get_or_init(|| super::gemm_i8::PackedWeights::new(&self.data, self.rows, self.cols))
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
        let scales = &self.scales;
        let out = self.matmul_map(&xq, n, |o, v| v as f32 * scales[o] * sx);
        Ok(ndarray::Array2::from_shape_vec((n, self.rows), out).expect("n x rows values"))
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
    const CHUNK: usize = 1 << 16;
    let parallel = worth_parallel(x.len());
    // The largest |x| as bits: for non-negative floats the integer order is the float
    // order, and NaN and infinity sit above every finite value, so one integer maximum
    // (which vectorizes, unlike a float maximum with a finiteness test) finds both.
    let scan = |c: &[f32]| c.iter().fold(0u32, |m, v| m.max(v.to_bits() & 0x7fff_ffff));
    let top = if parallel { x.par_chunks(CHUNK).map(scan).max().unwrap_or(0) } else { scan(x) };
    if top >= f32::INFINITY.to_bits() {
        return Err(QuantError::NonFinite { what: "the activations".into() });
    }
    let m = f32::from_bits(top);
    let s = if m == 0.0 { 1.0 } else { m / 127.0 };
    let mut q = vec![0i8; x.len()];
    let encode = |(out, c): (&mut [i8], &[f32])| {
        out.iter_mut().zip(c).for_each(|(o, v)| *o = round_to_code(*v / s));
    };
    if parallel {
        q.par_chunks_mut(CHUNK).zip(x.par_chunks(CHUNK)).for_each(encode);
    } else {
        encode((&mut q, x));
    }
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
    fn gemm_rows_equal_the_gemv_at_both_ranges() {
        // The GEMM (tile kernels; the 7-bit codes take the no-sign-step one on AVX2) and
        // the GEMV (dot kernels) share nothing but the quantization: one input row gives
        // bit-identical outputs, close to the float product.
        let (rows, cols) = (37, 300);
        let w = ndarray::Array2::from_shape_fn((rows, cols), |(i, j)| {
            (((i * 131 + j * 17) % 97) as f32 - 48.0) / 7.0
        });
        let x: Vec<f32> = (0..cols).map(|j| ((j * 29 % 53) as f32 - 26.0) / 5.0).collect();
        let exact = w.dot(&ndarray::ArrayView1::from(&x));
        let scale = exact.iter().map(|v| v.abs()).sum::<f32>();
        for q in [Int8Matrix::from_f32(w.view()), Int8Matrix::from_f32_reduced_range(w.view())] {
            let q = q.expect("finite");
            let xs = ndarray::ArrayView2::from_shape((1, cols), &x).expect("one row");
            let batched = q.gemm(xs).expect("gemm");
            let single = q.gemv(&x).expect("gemv");
            assert_eq!(batched.row(0).to_vec(), single);
            let error = single.iter().zip(&exact).map(|(a, b)| (a - b).abs()).sum::<f32>();
            assert!(error < 0.02 * scale, "{error} against {scale}");
        }
    }

    #[test]
    fn simd_and_portable_dots_agree_exactly() {
        let mut dots: Vec<(String, DotFn)> =
            Isa::runnable().into_iter().map(|isa| (format!("{isa:?}"), dot_for(isa))).collect();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            dots.push(("emulated vnni".into(), dot_emulated_vnni_safe));
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
