//! Products with weights kept in their compressed form: rows are decoded a block at a time
//! into a buffer that stays in cache and multiplied there, so the dense weight never
//! exists in memory and each packed byte is read once per product.

use deepcompress_core::ops::{gemm, worth_parallel};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Decoded values per block for a few input columns (256 KiB of f32, held in L2 while it
/// is multiplied).
const NARROW_BLOCK_VALUES: usize = 1 << 16;
/// Decoded values per block for many input columns (4 MiB): each block's product reads
/// the whole input again, so wider inputs take fewer, larger blocks.
const WIDE_BLOCK_VALUES: usize = 1 << 20;
/// Up to this many input columns the blocks are narrow.
const NARROW_COLUMNS: usize = 16;

/// `W x` for a `[rows, cols]` weight, `x: [cols, n]`, where `decode_rows(r0, r1, out)`
/// writes rows `r0..r1` of `W` row-major into `out`. Blocks run in parallel on large
/// weights (outside other rayon work), each multiplied with faer's GEMM.
pub(crate) fn streamed_matmul(
    rows: usize,
    cols: usize,
    x: ArrayView2<f32>,
    decode_rows: impl Fn(usize, usize, &mut [f32]) + Sync,
) -> Array2<f32> {
    let n = x.ncols();
    if n == 0 || rows == 0 {
        return Array2::zeros((rows, n));
    }
    let values = if n <= NARROW_COLUMNS { NARROW_BLOCK_VALUES } else { WIDE_BLOCK_VALUES };
    let per_thread = rows.div_ceil(rayon::current_num_threads()).max(1);
    let rows_per_task = (values / cols.max(1)).clamp(1, per_thread);
    let mut y = vec![0.0_f32; rows * n];
    let task = |buf: &mut Vec<f32>, (b, yb): (usize, &mut [f32])| {
        let (r0, block) = (b * rows_per_task, yb.len() / n);
        buf.resize(block * cols, 0.0);
        decode_rows(r0, r0 + block, buf);
        let w = ArrayView2::from_shape((block, cols), buf.as_slice()).expect("block x cols");
        let out = ArrayViewMut2::from_shape((block, n), yb).expect("block x n");
        gemm(1.0, w, x, false, out);
    };
    if worth_parallel(rows * cols) {
        y.par_chunks_mut(rows_per_task * n).enumerate().for_each_init(Vec::new, task);
    } else {
        let mut buf = Vec::new();
        y.chunks_mut(rows_per_task * n).enumerate().for_each(|t| task(&mut buf, t));
    }
    Array2::from_shape_vec((rows, n), y).expect("rows x n values")
}
