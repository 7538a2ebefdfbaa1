//! Block sparsity: whole `rows x cols` tiles of the `[out, in]` weight are pruned, by
//! their L2 norm, so that a kernel can skip them without per-weight indices
//! (Narang et al. 2017, arXiv 1711.02782; Gray et al. 2017, OpenAI block-sparse kernels).

use crate::{PruneError, Result};
use ndarray::{ArrayD, Ix2};

/// Checks a block shape against a weight of `shape` (`[out, in, ...]`).
pub(crate) fn check_block(rows: usize, cols: usize, shape: &[usize], path: &str) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(PruneError::param("block", format!("{rows}x{cols}"), "must not be empty"));
    }
    let out = shape[0];
    let inner: usize = shape.iter().skip(1).product();
    if !out.is_multiple_of(rows) || !inner.is_multiple_of(cols) {
        return Err(PruneError::Unsupported {
            path: path.into(),
            kind: format!("[{out}, {inner}]"),
            reason: format!("the weight does not divide into {rows}x{cols} blocks"),
        });
    }
    Ok(())
}

/// Prunes the `count` blocks of smallest L2 norm (blocks already all zero first, ties by
/// position). The mask is per weight.
///
/// ```
/// use deepcompress_prune::unstructured::block_mask;
/// use ndarray::array;
/// let w = array![[1.0f32, 1.0, 0.1, 0.1], [1.0, 1.0, 0.1, 0.1]].into_dyn();
/// let keep = block_mask(&w, 2, 2, 1).unwrap();
/// assert_eq!(keep, array![[true, true, false, false], [true, true, false, false]].into_dyn());
/// ```
pub fn block_mask(
    values: &ArrayD<f32>,
    rows: usize,
    cols: usize,
    count: usize,
) -> Result<ArrayD<bool>> {
    check_block(rows, cols, values.shape(), "weight")?;
    let out = values.shape()[0];
    let inner = values.len() / out.max(1);
    let m = values
        .view()
        .into_shape_with_order((out, inner))
        .map_err(|_| PruneError::param("weight", "layout", "must be contiguous"))?
        .into_dimensionality::<Ix2>()
        .expect("2-D");
    let (br, bc) = (out / rows, inner / cols);
    let norms: Vec<f32> = (0..br * bc)
        .map(|b| {
            let (r0, c0) = ((b / bc) * rows, (b % bc) * cols);
            let mut s = 0.0f32;
            for r in r0..r0 + rows {
                for c in c0..c0 + cols {
                    s += m[[r, c]] * m[[r, c]];
                }
            }
            s
        })
        .collect();
    let mut keep = ndarray::Array2::from_elem((out, inner), true);
    for b in super::magnitude::smallest(&norms, None, count) {
        let (r0, c0) = ((b / bc) * rows, (b % bc) * cols);
        keep.slice_mut(ndarray::s![r0..r0 + rows, c0..c0 + cols]).fill(false);
    }
    Ok(keep.into_shape_with_order(values.raw_dim()).expect("same size"))
}
