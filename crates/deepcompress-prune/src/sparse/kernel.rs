//! CSR x dense kernels, parallel over row blocks with rayon.
//!
//! Batch 1 is a gather-dot per row with eight independent accumulators (a dot product
//! cannot be vectorised without reordering its sum). Larger batches turn each stored
//! weight into an axpy over a contiguous row of `x` laid out `[in, n]`, which the
//! compiler vectorises; on x86-64 both loops are compiled a second time with AVX2 and
//! FMA and picked at run time, because the default target only has SSE2.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;
use std::borrow::Cow;

/// A borrowed CSR matrix: `row_ptr` has `rows + 1` entries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CsrView<'a> {
    pub rows: usize,
    pub row_ptr: &'a [u32],
    pub col_idx: &'a [u32],
    pub values: &'a [f32],
}

/// Rows per rayon task: enough work to amortise scheduling, and fixed so that results
/// do not depend on the thread count (each row is summed by one task in one order).
const NNZ_PER_TASK: usize = 1 << 15;

/// Below this many multiply-adds (`nnz * n`) the product runs on the calling thread:
/// handing work to the pool and waiting for it costs tens of microseconds, as much as
/// the product itself (99 %-sparse 4096 x 4096 at batch 1 took 0.19 ms through the pool
/// on one thread, against scipy's 0.16 ms).
const SERIAL_MACS: usize = 1 << 18;

/// `y = A x` for `x` of shape `[cols, n]`; `y` is `[rows, n]`.
pub(crate) fn spmm(a: CsrView<'_>, x: ArrayView2<f32>) -> Array2<f32> {
    let n = x.ncols();
    let mut y = Array2::<f32>::zeros((a.rows, n));
    if a.rows == 0 || n == 0 {
        return y;
    }
    let nnz = a.values.len();
    let rows_per_task = (NNZ_PER_TASK * a.rows / nnz.max(1)).clamp(1, a.rows);
    let out = y.as_slice_mut().expect("fresh array is contiguous");
    if n == 1 {
        let col = x.column(0);
        let xs: Cow<[f32]> = match col.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(col.to_vec()),
        };
        if serial(nnz * n) {
            gemv_rows(a, 0, &xs, out);
        } else {
            out.par_chunks_mut(rows_per_task).enumerate().for_each(|(t, ys)| {
                gemv_rows(a, t * rows_per_task, &xs, ys);
            });
        }
    } else {
        let xs = x.as_standard_layout();
        let xs = xs.as_slice().expect("standard layout");
        if serial(nnz * n) {
            spmm_rows(a, 0, xs, n, out);
        } else {
            out.par_chunks_mut(rows_per_task * n).enumerate().for_each(|(t, ys)| {
                spmm_rows(a, t * rows_per_task, xs, n, ys);
            });
        }
    }
    y
}

/// Whether a product of `macs` multiply-adds runs on the calling thread: when it is
/// small, or when the pool has one thread anyway. Rows are summed alike either way.
fn serial(macs: usize) -> bool {
    macs < SERIAL_MACS || rayon::current_num_threads() == 1
}

fn gemv_rows(a: CsrView<'_>, first: usize, x: &[f32], y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { gemv_rows_avx2(a, first, x, y) };
        return;
    }
    gemv_rows_portable::<false>(a, first, x, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gemv_rows_avx2(a: CsrView<'_>, first: usize, x: &[f32], y: &mut [f32]) {
    gemv_rows_portable::<true>(a, first, x, y);
}

#[inline(always)]
fn gemv_rows_portable<const FMA: bool>(a: CsrView<'_>, first: usize, x: &[f32], y: &mut [f32]) {
    for (i, yi) in y.iter_mut().enumerate() {
        let r = first + i;
        let (s, e) = (a.row_ptr[r] as usize, a.row_ptr[r + 1] as usize);
        let (cols, vals) = (&a.col_idx[s..e], &a.values[s..e]);
        let mut acc = [0.0f32; 8];
        let mut cc = cols.chunks_exact(8);
        let mut vc = vals.chunks_exact(8);
        for (c8, v8) in (&mut cc).zip(&mut vc) {
            for l in 0..8 {
                acc[l] = madd::<FMA>(v8[l], x[c8[l] as usize], acc[l]);
            }
        }
        let mut tail = 0.0f32;
        for (c, v) in cc.remainder().iter().zip(vc.remainder()) {
            tail = madd::<FMA>(*v, x[*c as usize], tail);
        }
        *yi = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
            + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
            + tail;
    }
}

fn spmm_rows(a: CsrView<'_>, first: usize, x: &[f32], n: usize, y: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports the features the function was compiled for.
        unsafe { spmm_rows_avx2(a, first, x, n, y) };
        return;
    }
    spmm_rows_portable::<false>(a, first, x, n, y);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn spmm_rows_avx2(a: CsrView<'_>, first: usize, x: &[f32], n: usize, y: &mut [f32]) {
    spmm_rows_portable::<true>(a, first, x, n, y);
}

/// Columns of `x` handled at once: a 64-float slice of `y` stays in eight AVX registers.
const COL_BLOCK: usize = 64;

#[inline(always)]
fn spmm_rows_portable<const FMA: bool>(
    a: CsrView<'_>,
    first: usize,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    for (i, yrow) in y.chunks_exact_mut(n).enumerate() {
        let r = first + i;
        let (s, e) = (a.row_ptr[r] as usize, a.row_ptr[r + 1] as usize);
        let (cols, vals) = (&a.col_idx[s..e], &a.values[s..e]);
        for c0 in (0..n).step_by(COL_BLOCK) {
            let w = COL_BLOCK.min(n - c0);
            if w == COL_BLOCK {
                let mut acc = [0.0f32; COL_BLOCK];
                for (c, v) in cols.iter().zip(vals) {
                    let xr = &x[*c as usize * n + c0..][..COL_BLOCK];
                    for l in 0..COL_BLOCK {
                        acc[l] = madd::<FMA>(*v, xr[l], acc[l]);
                    }
                }
                yrow[c0..c0 + COL_BLOCK].copy_from_slice(&acc);
            } else {
                let acc = &mut yrow[c0..c0 + w];
                for (c, v) in cols.iter().zip(vals) {
                    let xr = &x[*c as usize * n + c0..][..w];
                    for (a, xv) in acc.iter_mut().zip(xr) {
                        *a = madd::<FMA>(*v, *xv, *a);
                    }
                }
            }
        }
    }
}

/// `a * b + c`, fused where the caller was compiled with FMA (a software `mul_add`
/// would be a slow library call on CPUs without it).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// A product big enough for the pool gives the same bits as the rows summed on the
    /// calling thread.
    #[test]
    fn pool_and_calling_thread_agree() {
        let (rows, cols) = (700, 600);
        let mut z = 3u64;
        let mut next = || {
            z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (z >> 40) as f32 / (1u64 << 24) as f32
        };
        let (mut row_ptr, mut col_idx, mut values) = (vec![0u32], Vec::new(), Vec::new());
        for _ in 0..rows {
            for c in 0..cols {
                if next() < 0.7 {
                    col_idx.push(c as u32);
                    values.push(next() - 0.5);
                }
            }
            row_ptr.push(col_idx.len() as u32);
        }
        let a = CsrView { rows, row_ptr: &row_ptr, col_idx: &col_idx, values: &values };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        assert!(pool.install(|| !serial(values.len())));
        for n in [1, 3] {
            let x = Array2::from_shape_fn((cols, n), |_| next());
            let pooled = pool.install(|| spmm(a, x.view()));
            let mut own = vec![0.0f32; rows * n];
            let xs = x.as_slice().unwrap();
            if n == 1 {
                gemv_rows(a, 0, xs, &mut own);
            } else {
                spmm_rows(a, 0, xs, n, &mut own);
            }
            assert_eq!(pooled.as_slice().unwrap(), &own[..], "batch {n}");
        }
    }
}
