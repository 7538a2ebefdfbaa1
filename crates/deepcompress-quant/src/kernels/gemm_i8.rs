//! Int8 GEMM with exact i32 accumulation: `out[i, o] = Σ_k x[i, k] · w[o, k]`.
//!
//! Blocking: threads take blocks of weight rows (read from memory once); inside a block
//! the inner dimension is cut into chunks that keep a tile of weights in L1 while every
//! input row streams past it; the AVX2 micro-kernel computes 4 weight rows × 2 input rows
//! at once (8 accumulators), so each load feeds several multiplies.

use rayon::prelude::*;

/// Weight rows per parallel task.
const ROW_BLOCK: usize = 64;
/// Inner-dimension bytes per cache chunk (a multiple of 32).
const K_CHUNK: usize = 2048;
/// Weight rows × input rows of the micro-kernel (the reduction in `tile_avx2` assumes 4 x 2).
const TILE_W: usize = 4;
const TILE_X: usize = 2;

/// Products of `x` (`[n, k]`, any int8 code) and the rows of `w` (`[rows, k]`, codes in
/// `-127..=127`), as `[n, rows]` row-major i32. Exact; rows run in parallel.
pub(crate) fn gemm_i32(w: &[i8], rows: usize, x: &[i8], n: usize, k: usize) -> Vec<i32> {
    debug_assert_eq!(w.len(), rows * k);
    debug_assert_eq!(x.len(), n * k);
    let kernel = kernel_fn();
    let blocks: Vec<Vec<i32>> = (0..rows.div_ceil(ROW_BLOCK))
        .into_par_iter()
        .map(|b| {
            let r0 = b * ROW_BLOCK;
            let r1 = (r0 + ROW_BLOCK).min(rows);
            let mut acc = vec![0i32; (r1 - r0) * n];
            block(&w[r0 * k..r1 * k], r1 - r0, x, n, k, kernel, &mut acc);
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

/// The tile kernel: `acc[a][b] += Σ_{t < len} x_b[t] · w_a[t]` over whole 32-byte steps.
type Kernel = fn(&[&[i8]; TILE_W], &[&[i8]; TILE_X], &mut [[i32; TILE_X]; TILE_W]);

fn kernel_fn() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return tile_avx2_safe;
        }
    }
    tile_portable
}

/// One block of weight rows against all inputs; `acc` is `[rows, n]`.
fn block(w: &[i8], rows: usize, x: &[i8], n: usize, k: usize, kernel: Kernel, acc: &mut [i32]) {
    for k0 in (0..k).step_by(K_CHUNK) {
        let k1 = (k0 + K_CHUNK).min(k);
        for r0 in (0..rows).step_by(TILE_W) {
            let wt: [&[i8]; TILE_W] = std::array::from_fn(|a| {
                // Past the last row, repeat row r0: computed, then discarded below.
                let r = if r0 + a < rows { r0 + a } else { r0 };
                &w[r * k + k0..r * k + k1]
            });
            for i0 in (0..n).step_by(TILE_X) {
                let xt: [&[i8]; TILE_X] = std::array::from_fn(|b| {
                    let i = if i0 + b < n { i0 + b } else { i0 };
                    &x[i * k + k0..i * k + k1]
                });
                let mut t = [[0i32; TILE_X]; TILE_W];
                kernel(&wt, &xt, &mut t);
                for (a, row) in t.iter().enumerate() {
                    for (b, v) in row.iter().enumerate() {
                        if r0 + a < rows && i0 + b < n {
                            acc[(r0 + a) * n + i0 + b] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Plain loops.
fn tile_portable(w: &[&[i8]; TILE_W], x: &[&[i8]; TILE_X], acc: &mut [[i32; TILE_X]; TILE_W]) {
    for (a, wa) in w.iter().enumerate() {
        for (b, xb) in x.iter().enumerate() {
            acc[a][b] += wa.iter().zip(xb.iter()).map(|(&p, &q)| p as i32 * q as i32).sum::<i32>();
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn tile_avx2_safe(w: &[&[i8]; TILE_W], x: &[&[i8]; TILE_X], acc: &mut [[i32; TILE_X]; TILE_W]) {
    // `block` cuts every slice of a tile to the same chunk of the inner dimension.
    assert!(w.iter().chain(x.iter()).all(|s| s.len() == w[0].len()), "tile slices differ");
    // SAFETY: only returned by `kernel_fn` after AVX2 was detected at run time; all
    // slices have the same length, checked above.
    unsafe { tile_avx2(w, x, acc) }
}

/// 8 accumulators of 8 i32 lanes; per 32-byte step 6 loads feed 8 signed-byte
/// multiplies (the activations are the first, unsigned operand of `maddubs`, so their
/// code -128 is safe; weights stay within ±127, see [`super::madd_i8`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_avx2(w: &[&[i8]; TILE_W], x: &[&[i8]; TILE_X], acc: &mut [[i32; TILE_X]; TILE_W]) {
    use std::arch::x86_64::*;
    let len = w[0].len();
    let steps = len / 32;
    // SAFETY: every load reads 32 bytes at offset 32 * s < 32 * steps <= len of slices
    // that all have length `len`.
    unsafe {
        let mut v = [[_mm256_setzero_si256(); TILE_X]; TILE_W];
        for s in 0..steps {
            let at = |p: &[i8]| _mm256_loadu_si256(p.as_ptr().add(32 * s) as *const __m256i);
            let xs: [__m256i; TILE_X] = std::array::from_fn(|b| at(x[b]));
            for a in 0..TILE_W {
                let wa = at(w[a]);
                for b in 0..TILE_X {
                    v[a][b] = _mm256_add_epi32(v[a][b], super::madd_i8(xs[b], wa));
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
        let tail = 32 * steps;
        for a in 0..TILE_W {
            for b in 0..TILE_X {
                acc[a][b] += lanes[a * TILE_X + b];
                if tail < len {
                    acc[a][b] += w[a][tail..]
                        .iter()
                        .zip(&x[b][tail..])
                        .map(|(&p, &q)| p as i32 * q as i32)
                        .sum::<i32>();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_simd_product_equals_the_naive_one() {
        for &(rows, n, k) in &[(1, 1, 1), (5, 3, 33), (70, 7, 600), (4, 2, 64), (130, 1, 1030)] {
            let w: Vec<i8> = (0..rows * k).map(|i| ((i * 37 % 255) as i32 - 127) as i8).collect();
            let x: Vec<i8> = (0..n * k).map(|i| ((i * 91 % 256) as i32 - 128) as i8).collect();
            let got = gemm_i32(&w, rows, &x, n, k);
            for i in 0..n {
                for o in 0..rows {
                    let want: i32 = (0..k).map(|t| x[i * k + t] as i32 * w[o * k + t] as i32).sum();
                    assert_eq!(got[i * rows + o], want, "({rows}, {n}, {k}) at ({i}, {o})");
                }
            }
        }
    }
}
