//! Int8 GEMM with exact i32 accumulation: `out[i, o] = Σ_k x[i, k] · w[o, k]`.
//!
//! Both operands are first packed so the micro-kernel reads each as one sequential
//! stream: inputs in pairs of rows and weights in tiles of 4 rows, interleaved every 32
//! bytes and zero-padded to whole 32-byte steps (zeros add nothing to an exact sum).
//! Weights are packed once per matrix, inputs per call. Threads take blocks of 64 weight
//! rows; inside a block
//! the steps are cut into chunks that keep a weight tile in L1 while every input pair
//! streams past it; the AVX2 micro-kernel computes 4 weight rows × 2 input rows at once
//! (8 accumulators), so each load feeds several multiplies.

use rayon::prelude::*;

/// Weight rows per parallel task.
const ROW_BLOCK: usize = 64;
/// Bytes of one step of the micro-kernel (one AVX2 register).
const STEP: usize = 32;
/// Steps per cache chunk (2,048 bytes of each row).
const CHUNK_STEPS: usize = 64;
/// Weight rows × input rows of the micro-kernel (the reduction in `tile_avx2` assumes 4 x 2).
const TILE_W: usize = 4;
const TILE_X: usize = 2;

/// Weights `[rows, k]` in the layout the GEMM reads: tiles of 4 rows, interleaved every 32
/// bytes (see [`pack`]). A block of [`ROW_BLOCK`] rows is a contiguous slice of it.
pub(crate) fn pack_weights(w: &[i8], rows: usize, k: usize) -> Vec<i8> {
    debug_assert_eq!(w.len(), rows * k);
    pack(w, rows, k, TILE_W)
}

/// Products of `x` (`[n, k]`, any int8 code) and the rows of the packed weights
/// ([`pack_weights`] of `[rows, k]` codes in `-127..=127`), as `[n, rows]` row-major i32.
/// Exact; row blocks run in parallel.
pub(crate) fn gemm_i32(wp: &[i8], rows: usize, x: &[i8], n: usize, k: usize) -> Vec<i32> {
    debug_assert_eq!(x.len(), n * k);
    let steps = k.div_ceil(STEP);
    let tile_bytes = steps * STEP * TILE_W;
    debug_assert_eq!(wp.len(), rows.div_ceil(TILE_W) * tile_bytes);
    let xp = pack(x, n, k, TILE_X);
    let kernel = kernel_fn();
    let blocks: Vec<Vec<i32>> = (0..rows.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|b| {
            let r0 = b * ROW_BLOCK;
            let r1 = (r0 + ROW_BLOCK).min(rows);
            let tiles = r0 / TILE_W..r1.div_ceil(TILE_W);
            let wb = &wp[tiles.start * tile_bytes..tiles.end * tile_bytes];
            let mut acc = vec![0i32; (r1 - r0) * n];
            block(wb, r1 - r0, &xp, n, steps, kernel, &mut acc);
            acc
        })
        .collect();
    let mut out = vec![0i32; n * rows];
    for (b, acc) in blocks.iter().enumerate() {
        let r0 = b * ROW_BLOCK;
        let nr = acc.len() / n.max(1);
        for i in 0..n {
            for r in 0..nr {
                out[i * rows + r0 + r] = acc[r * n + i];
            }
        }
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

/// The tile kernel: sums over `steps` steps of a packed weight tile and a packed input
/// pair, `acc[a][b] += Σ x_b · w_a`.
type Kernel = fn(&[i8], &[i8], usize, &mut [[i32; TILE_X]; TILE_W]);

fn kernel_fn() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return tile_avx2_safe;
        }
    }
    tile_portable
}

/// One block of packed weight tiles against all packed input pairs; `acc` is `[rows, n]`.
fn block(
    wp: &[i8],
    rows: usize,
    xp: &[i8],
    n: usize,
    steps: usize,
    kernel: Kernel,
    acc: &mut [i32],
) {
    let (wg, xg) = (steps * STEP * TILE_W, steps * STEP * TILE_X);
    for s0 in (0..steps).step_by(CHUNK_STEPS) {
        let len = CHUNK_STEPS.min(steps - s0);
        for t in 0..rows.div_ceil(TILE_W) {
            let wt = &wp[t * wg + s0 * STEP * TILE_W..t * wg + (s0 + len) * STEP * TILE_W];
            for p in 0..n.div_ceil(TILE_X) {
                let xt = &xp[p * xg + s0 * STEP * TILE_X..p * xg + (s0 + len) * STEP * TILE_X];
                let mut sums = [[0i32; TILE_X]; TILE_W];
                kernel(wt, xt, len, &mut sums);
                for (a, row) in sums.iter().enumerate() {
                    let r = t * TILE_W + a;
                    for (b, v) in row.iter().enumerate() {
                        let i = p * TILE_X + b;
                        if r < rows && i < n {
                            acc[r * n + i] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Plain loops over the packed layout.
fn tile_portable(w: &[i8], x: &[i8], steps: usize, acc: &mut [[i32; TILE_X]; TILE_W]) {
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

#[cfg(target_arch = "x86_64")]
fn tile_avx2_safe(w: &[i8], x: &[i8], steps: usize, acc: &mut [[i32; TILE_X]; TILE_W]) {
    // `block` hands over exactly `steps` packed steps of each operand.
    assert!(w.len() >= steps * STEP * TILE_W && x.len() >= steps * STEP * TILE_X);
    // SAFETY: only returned by `kernel_fn` after AVX2 was detected at run time; the
    // lengths are checked above.
    unsafe { tile_avx2(w, x, steps, acc) }
}

/// 8 accumulators of 8 i32 lanes; per 32-byte step 6 sequential loads feed 8 signed-byte
/// multiplies (the activations are the first, unsigned operand of `maddubs`, so their
/// code -128 is safe; weights stay within ±127, see [`super::madd_i8`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(w: &[i8], x: &[i8], steps: usize, acc: &mut [[i32; TILE_X]; TILE_W]) {
    use std::arch::x86_64::*;
    // SAFETY: step `s` reads bytes [128 s, 128 s + 128) of `w` and [64 s, 64 s + 64) of
    // `x`, inside the lengths the caller checked.
    unsafe {
        let (wp, xp) = (w.as_ptr() as *const __m256i, x.as_ptr() as *const __m256i);
        let mut v = [[_mm256_setzero_si256(); TILE_X]; TILE_W];
        for s in 0..steps {
            let xs: [__m256i; TILE_X] =
                std::array::from_fn(|b| _mm256_loadu_si256(xp.add(s * TILE_X + b)));
            for (a, va) in v.iter_mut().enumerate() {
                let wa = _mm256_loadu_si256(wp.add(s * TILE_W + a));
                for (b, vab) in va.iter_mut().enumerate() {
                    *vab = _mm256_add_epi32(*vab, super::madd_i8(xs[b], wa));
                }
            }
        }
        // Horizontal sums of the 8 accumulators at once: pairwise adds within 128-bit
        // halves, then the two halves added: [s00, s01, s10, s11, s20, s21, s30, s31].
        let q0 = _mm256_hadd_epi32(
            _mm256_hadd_epi32(v[0][0], v[0][1]),
            _mm256_hadd_epi32(v[1][0], v[1][1]),
        );
        let q1 = _mm256_hadd_epi32(
            _mm256_hadd_epi32(v[2][0], v[2][1]),
            _mm256_hadd_epi32(v[3][0], v[3][1]),
        );
        let sums = _mm256_add_epi32(
            _mm256_permute2x128_si256(q0, q1, 0x20),
            _mm256_permute2x128_si256(q0, q1, 0x31),
        );
        let mut lanes = [0i32; 8];
        _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sums);
        for (a, row) in acc.iter_mut().enumerate() {
            for (b, v) in row.iter_mut().enumerate() {
                *v += lanes[a * TILE_X + b];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn portable_and_simd_tiles_agree() {
        let (rows, n, k): (usize, usize, usize) = (9, 5, 100);
        let w: Vec<i8> = (0..rows * k).map(|i| ((i * 53 % 255) as i32 - 127) as i8).collect();
        let x: Vec<i8> = (0..n * k).map(|i| ((i * 29 % 256) as i32 - 128) as i8).collect();
        let steps = k.div_ceil(STEP);
        let (wp, xp) = (pack(&w, rows, k, TILE_W), pack(&x, n, k, TILE_X));
        let mut simd = vec![0i32; rows * n];
        let mut plain = vec![0i32; rows * n];
        block(&wp, rows, &xp, n, steps, kernel_fn(), &mut simd);
        block(&wp, rows, &xp, n, steps, tile_portable, &mut plain);
        assert_eq!(simd, plain);
    }

    #[test]
    fn blocked_simd_product_equals_the_naive_one() {
        for &(rows, n, k) in &[(1, 1, 1), (5, 3, 33), (70, 7, 600), (4, 2, 64), (130, 1, 1030)] {
            let w: Vec<i8> = (0..rows * k).map(|i| ((i * 37 % 255) as i32 - 127) as i8).collect();
            let x: Vec<i8> = (0..n * k).map(|i| ((i * 91 % 256) as i32 - 128) as i8).collect();
            let got = gemm_i32(&pack_weights(&w, rows, k), rows, &x, n, k);
            for i in 0..n {
                for o in 0..rows {
                    let want: i32 = (0..k).map(|t| x[i * k + t] as i32 * w[o * k + t] as i32).sum();
                    assert_eq!(got[i * rows + o], want, "({rows}, {n}, {k}) at ({i}, {o})");
                }
            }
        }
    }
}
