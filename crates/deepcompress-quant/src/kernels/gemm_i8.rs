//! Int8 GEMM with exact i32 accumulation: `out[i, o] = Σ_k x[i, k] · w[o, k]`.
//!
//! Both operands are first packed so the micro-kernel reads each as one sequential
//! stream: inputs in pairs of rows and weights in tiles of 4 rows, interleaved every 32
//! bytes and zero-padded to whole 32-byte steps (zeros add nothing to an exact sum).
//! Weights are packed once per matrix, inputs per call. Threads take blocks of 64 weight
//! rows; inside a block the steps are cut into chunks that keep a weight tile in L1 while
//! every input pair streams past it; the micro-kernel computes 4 weight rows × 2 input
//! rows at once (8 accumulators), so each load feeds several multiplies.
//!
//! With VNNI the inputs are packed as unsigned bytes `x + 128`, so one `vpdpbusd` does
//! the work of three AVX2 instructions and the sign step; the surplus `128 · Σ_k w[o, k]`
//! is subtracted at the end from sums the weights carry. Weights within ±64 (7-bit codes)
//! take the same unsigned layout on AVX2: `maddubs` cannot saturate on them, so the sign
//! step goes, leaving 3 instructions per 32 products instead of 5.

use super::isa::Isa;
use deepcompress_core::ops::worth_parallel;
use rayon::prelude::*;

/// Weight rows per parallel task.
const ROW_BLOCK: usize = 64;
/// Bytes of one step of the micro-kernel (one AVX2 register).
const STEP: usize = 32;
/// Steps per cache chunk (2,048 bytes of each row).
const CHUNK_STEPS: usize = 64;
/// Weight rows × input rows of the micro-kernel (the reduction in `reduce_tile` assumes
/// 4 x 2).
const TILE_W: usize = 4;
const TILE_X: usize = 2;

/// Weights `[rows, k]` in the layout the GEMM reads, with each row's sum of codes.
#[derive(Debug, Clone)]
pub(crate) struct PackedWeights {
    /// Tiles of 4 rows, interleaved every 32 bytes (see [`pack`]); a block of
    /// [`ROW_BLOCK`] rows is a contiguous slice.
    tiles: Vec<i8>,
    /// `Σ_k w[o, k]`, for the unsigned-input kernels' offset correction.
    row_sums: Vec<i32>,
    /// Every code within ±64, where the AVX2 kernel can skip the sign step.
    narrow: bool,
}

impl PackedWeights {
    /// Packs `w` (`[rows, k]` codes in `-127..=127`).
    pub(crate) fn new(w: &[i8], rows: usize, k: usize) -> Self {
        debug_assert_eq!(w.len(), rows * k);
        let row_sums = w.chunks(k.max(1)).map(|r| r.iter().map(|&v| v as i32).sum()).collect();
        let narrow = w.iter().all(|v| (-64..=64).contains(v));
        Self { tiles: pack(w, rows, k, TILE_W), row_sums, narrow }
    }
}

/// Products of `x` (`[n, k]`, any int8 code) and the rows of the packed weights, as
/// `[n, rows]` row-major, with `f(o, sum)` applied to each exact sum of weight row `o` as
/// it is written out (a rescale to f32, say; no i32 result is stored in between). Sums
/// are exact (modulo 2^32 if one overflows i32); row blocks run in parallel; the kernel
/// is the best this CPU has.
pub(crate) fn gemm_map<T: Copy + Default + Send>(
    wp: &PackedWeights,
    rows: usize,
    x: &[i8],
    n: usize,
    k: usize,
    f: impl Fn(usize, i32) -> T + Sync,
) -> Vec<T> {
    gemm_with(kernel_for(Isa::detect(), wp.narrow), wp, rows, x, n, k, f)
}

fn gemm_with<T: Copy + Default + Send>(
    kernel: Kernel,
    wp: &PackedWeights,
    rows: usize,
    x: &[i8],
    n: usize,
    k: usize,
    f: impl Fn(usize, i32) -> T + Sync,
) -> Vec<T> {
    debug_assert_eq!(x.len(), n * k);
    let steps = k.div_ceil(STEP);
    let tile_bytes = steps * STEP * TILE_W;
    debug_assert_eq!(wp.tiles.len(), rows.div_ceil(TILE_W) * tile_bytes);
    let mut xp = pack(x, n, k, TILE_X);
    if kernel.unsigned_x {
        // x + 128 as an unsigned byte; the padding becomes 128, still times zero weights.
        xp.iter_mut().for_each(|v| *v = (*v as u8 ^ 0x80) as i8);
    }
    // Each block's sums are `[n, its rows]`, so an output row takes one contiguous run
    // from every block.
    let blocks: Vec<Vec<i32>> = (0..rows.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|b| {
            let r0 = b * ROW_BLOCK;
            let r1 = (r0 + ROW_BLOCK).min(rows);
            let tiles = r0 / TILE_W..r1.div_ceil(TILE_W);
            let wb = &wp.tiles[tiles.start * tile_bytes..tiles.end * tile_bytes];
            let mut acc = vec![0i32; (r1 - r0) * n];
            block(wb, r1 - r0, &xp, n, steps, kernel.tile, &mut acc);
            acc
        })
        .collect();
    let surplus: Vec<i32> = if kernel.unsigned_x {
        wp.row_sums.iter().map(|s| s.wrapping_mul(128)).collect()
    } else {
        vec![0; rows]
    };
    let mut out = vec![T::default(); n * rows];
    let write_row = |(i, row): (usize, &mut [T])| {
        for (b, acc) in blocks.iter().enumerate() {
            let (r0, width) = (b * ROW_BLOCK, acc.len() / n);
            let sums = &acc[i * width..(i + 1) * width];
            for (r, (o, &v)) in row[r0..r0 + width].iter_mut().zip(sums).enumerate() {
                *o = f(r0 + r, v.wrapping_sub(surplus[r0 + r]));
            }
        }
    };
    if worth_parallel(n * rows) {
        out.par_chunks_mut(rows.max(1)).enumerate().for_each(write_row);
    } else {
        out.chunks_mut(rows.max(1)).enumerate().for_each(write_row);
    }
    out
}

/// Groups of `tile` rows of `m` (`[rows, k]`), each group stored step by step: the 32
/// bytes of step `s` of its rows one after the other. Missing rows and the tail of the
/// last step are zeros.
fn pack(m: &[i8], rows: usize, k: usize, tile: usize) -> Vec<i8> {
    let steps = k.div_ceil(STEP);
    let group = steps * STEP * tile;
    let mut out = vec![0i8; rows.div_ceil(tile) * group];
    for r in 0..rows {
        let (g, a) = (r / tile, r % tile);
        for (s, chunk) in m[r * k..(r + 1) * k].chunks(STEP).enumerate() {
            let at = g * group + (s * tile + a) * STEP;
            out[at..at + chunk.len()].copy_from_slice(chunk);
        }
    }
    out
}

/// Sums of one tile: `[weight row][input row]`.
type Sums = [[i32; TILE_X]; TILE_W];

/// The tile kernel: sums over `steps` steps of a packed weight tile and a packed input
/// pair, `acc[a][b] += Σ x_b · w_a`.
type TileFn = fn(&[i8], &[i8], usize, &mut Sums);

/// A tile kernel and the input encoding it expects.
#[derive(Clone, Copy)]
struct Kernel {
    tile: TileFn,
    /// Inputs packed as unsigned `x + 128` (the VNNI kernels), not as signed codes.
    unsigned_x: bool,
}

/// The kernel for an instruction set and weights within ±64 (`narrow`) or not; the caller
/// makes sure the CPU has the instruction set.
fn kernel_for(isa: Isa, narrow: bool) -> Kernel {
    let (tile, unsigned_x): (TileFn, bool) = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512Vnni => (tile_avx512vnni_safe, true),
        #[cfg(target_arch = "x86_64")]
        Isa::AvxVnni => (tile_avxvnni_safe, true),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 if narrow => (tile_avx2_narrow_safe, true),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => (tile_avx2_safe, false),
        _ => (tile_portable, false),
    };
    Kernel { tile, unsigned_x }
}

/// One block of packed weight tiles against all packed input pairs; `acc` is `[n, rows]`.
fn block(wp: &[i8], rows: usize, xp: &[i8], n: usize, steps: usize, tile: TileFn, acc: &mut [i32]) {
    let (wg, xg) = (steps * STEP * TILE_W, steps * STEP * TILE_X);
    for s0 in (0..steps).step_by(CHUNK_STEPS) {
        let len = CHUNK_STEPS.min(steps - s0);
        for t in 0..rows.div_ceil(TILE_W) {
            let wt = &wp[t * wg + s0 * STEP * TILE_W..t * wg + (s0 + len) * STEP * TILE_W];
            for p in 0..n.div_ceil(TILE_X) {
                let xt = &xp[p * xg + s0 * STEP * TILE_X..p * xg + (s0 + len) * STEP * TILE_X];
                let mut sums = [[0i32; TILE_X]; TILE_W];
                tile(wt, xt, len, &mut sums);
                for (a, row) in sums.iter().enumerate() {
                    let r = t * TILE_W + a;
                    for (b, v) in row.iter().enumerate() {
                        let i = p * TILE_X + b;
                        if r < rows && i < n {
                            acc[i * rows + r] = acc[i * rows + r].wrapping_add(*v);
                        }
                    }
                }
            }
        }
    }
}

/// Plain loops over the packed layout (signed inputs).
fn tile_portable(w: &[i8], x: &[i8], steps: usize, acc: &mut Sums) {
    for s in 0..steps {
        for (a, row) in acc.iter_mut().enumerate() {
            let wa = &w[(s * TILE_W + a) * STEP..][..STEP];
            for (b, v) in row.iter_mut().enumerate() {
                let xb = &x[(s * TILE_X + b) * STEP..][..STEP];
                *v += wa.iter().zip(xb).map(|(&p, &q)| p as i32 * q as i32).sum::<i32>();
            }
        }
    }
}

/// Stamps out a SIMD tile kernel around one multiply-accumulate primitive of [`super::isa`]
/// (`dot(acc, x, w)`), and the safe wrapper `kernel_for` hands out.
macro_rules! simd_tile {
    ($safe:ident, $name:ident, $features:literal, $dot:path) => {
        #[cfg(target_arch = "x86_64")]
        fn $safe(w: &[i8], x: &[i8], steps: usize, acc: &mut Sums) {
            // `block` hands over exactly `steps` packed steps of each operand.
            assert!(w.len() >= steps * STEP * TILE_W && x.len() >= steps * STEP * TILE_X);
            // SAFETY: only handed out for an `Isa` that was detected at run time (or, in
            // tests, checked before use); the lengths are checked above.
            unsafe { $name(w, x, steps, acc) }
        }

        /// 8 accumulators of 8 i32 lanes; per 32-byte step 6 sequential loads feed 8
        /// multiply-accumulates.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(w: &[i8], x: &[i8], steps: usize, acc: &mut Sums) {
            use std::arch::x86_64::*;
            // SAFETY: step `s` reads bytes [128 s, 128 s + 128) of `w` and [64 s, 64 s +
            // 64) of `x`, inside the lengths the caller checked.
            unsafe {
                let (wp, xp) = (w.as_ptr() as *const __m256i, x.as_ptr() as *const __m256i);
                let mut v = [[_mm256_setzero_si256(); TILE_X]; TILE_W];
                for s in 0..steps {
                    let xs: [__m256i; TILE_X] =
                        std::array::from_fn(|b| _mm256_loadu_si256(xp.add(s * TILE_X + b)));
                    for (a, va) in v.iter_mut().enumerate() {
                        let wa = _mm256_loadu_si256(wp.add(s * TILE_W + a));
                        for (b, vab) in va.iter_mut().enumerate() {
                            *vab = $dot(*vab, xs[b], wa);
                        }
                    }
                }
                reduce_tile(&v, acc);
            }
        }
    };
}

// Signed inputs within any code, weights within ±127 (the sign trick of `madd_i8`).
simd_tile!(tile_avx2_safe, tile_avx2, "avx2", super::isa::dot_acc_avx2);
// Unsigned inputs `x + 128`, weights within ±64.
simd_tile!(tile_avx2_narrow_safe, tile_avx2_narrow, "avx2", super::isa::dpbusd_avx2_narrow);
// Unsigned inputs `x + 128`, any weight code.
simd_tile!(tile_avxvnni_safe, tile_avxvnni, "avx2,avxvnni", super::isa::dpbusd_avxvnni);
simd_tile!(
    tile_avx512vnni_safe,
    tile_avx512vnni,
    "avx2,avx512vnni,avx512vl",
    super::isa::dpbusd_avx512vnni
);
#[cfg(test)]
simd_tile!(tile_emulated_vnni_safe, tile_emulated_vnni, "avx2", super::isa::dpbusd_emulated);

/// Horizontal sums of the 8 accumulators at once, added to `acc`: pairwise adds within
/// 128-bit halves, then the two halves added: [s00, s01, s10, s11, s20, s21, s30, s31].
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2")]
fn reduce_tile(v: &[[std::arch::x86_64::__m256i; TILE_X]; TILE_W], acc: &mut Sums) {
    use std::arch::x86_64::*;
    let q0 =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[0][0], v[0][1]), _mm256_hadd_epi32(v[1][0], v[1][1]));
    let q1 =
        _mm256_hadd_epi32(_mm256_hadd_epi32(v[2][0], v[2][1]), _mm256_hadd_epi32(v[3][0], v[3][1]));
    let sums = _mm256_add_epi32(
        _mm256_permute2x128_si256(q0, q1, 0x20),
        _mm256_permute2x128_si256(q0, q1, 0x31),
    );
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` holds exactly one 32-byte register.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sums) };
    for (a, row) in acc.iter_mut().enumerate() {
        for (b, v) in row.iter_mut().enumerate() {
            *v = v.wrapping_add(lanes[a * TILE_X + b]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel this CPU can run for weights within ±64 (`narrow`) or not: one per
    /// instruction set it has (VNNI included, where present), the wide AVX2 kernel on 7-bit
    /// codes too, and on AVX2 CPUs the VNNI layout with `vpdpbusd` emulated (so the offset
    /// correction is tested here even without VNNI hardware).
    fn runnable_kernels(narrow: bool) -> Vec<(String, Kernel)> {
        let mut ks: Vec<(String, Kernel)> = Isa::runnable()
            .into_iter()
            .map(|isa| (format!("{isa:?}"), kernel_for(isa, narrow)))
            .collect();
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            ks.push((
                "emulated vnni".into(),
                Kernel { tile: tile_emulated_vnni_safe, unsigned_x: true },
            ));
            if narrow {
                ks.push(("Avx2 on 7-bit codes, wide kernel".into(), kernel_for(Isa::Avx2, false)));
            }
        }
        ks
    }

    fn naive(w: &[i8], x: &[i8], rows: usize, n: usize, k: usize) -> Vec<i32> {
        let mut out = vec![0i32; n * rows];
        for i in 0..n {
            for o in 0..rows {
                out[i * rows + o] = (0..k).map(|t| x[i * k + t] as i32 * w[o * k + t] as i32).sum();
            }
        }
        out
    }

    #[test]
    fn every_kernel_equals_the_naive_product() {
        let shapes = [(1, 1, 1), (5, 3, 33), (70, 7, 600), (4, 2, 64), (130, 1, 1030), (9, 5, 100)];
        // Codes over all of ±127, and 7-bit ones over ±64.
        for (narrow, span) in [(false, 255), (true, 129)] {
            for (name, kernel) in runnable_kernels(narrow) {
                for &(rows, n, k) in &shapes {
                    let w: Vec<i8> = (0..rows * k)
                        .map(|i| ((i * 37 % span) as i32 - span as i32 / 2) as i8)
                        .collect();
                    let x: Vec<i8> =
                        (0..n * k).map(|i| ((i * 91 % 256) as i32 - 128) as i8).collect();
                    let wp = PackedWeights::new(&w, rows, k);
                    assert_eq!(wp.narrow, narrow);
                    let got = gemm_with(kernel, &wp, rows, &x, n, k, |_, v| v);
                    assert_eq!(got, naive(&w, &x, rows, n, k), "{name} on ({rows}, {n}, {k})");
                }
            }
        }
    }

    #[test]
    fn extreme_codes_neither_saturate_nor_lose_the_offset() {
        // x = -128 everywhere (0 after the VNNI offset) and weights at ±127: the largest
        // products, where `maddubs` would saturate without the sign step.
        // The 7-bit kernel's limit is weights at ±64 against x + 128 = 255 or 0.
        let (rows, n, k) = (6, 3, 4096);
        for (narrow, top) in [(false, 127i8), (true, 64)] {
            let w: Vec<i8> =
                (0..rows * k).map(|i| if (i / 7) % 2 == 0 { top } else { -top }).collect();
            for xv in [-128i8, 127, -127] {
                let x = vec![xv; n * k];
                for (name, kernel) in runnable_kernels(narrow) {
                    let got = gemm_with(
                        kernel,
                        &PackedWeights::new(&w, rows, k),
                        rows,
                        &x,
                        n,
                        k,
                        |_, v| v,
                    );
                    assert_eq!(got, naive(&w, &x, rows, n, k), "{name} with x = {xv}, w = ±{top}");
                }
            }
        }
    }
}
