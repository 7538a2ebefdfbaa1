//! N:M semi-structured sparsity: N weights kept in every group of M consecutive inputs
//! (2:4 is what NVIDIA's sparse tensor cores run; Mishra et al. 2021, arXiv 2104.08378).

use crate::{PruneError, Result};
use ndarray::ArrayD;

/// Checks an N:M pattern against a weight of `shape` (`[out, in, ...]`).
pub(crate) fn check_n_m(n: usize, m: usize, shape: &[usize], path: &str) -> Result<()> {
    if m < 2 || n == 0 || n >= m {
        return Err(PruneError::param("N:M", format!("{n}:{m}"), "needs 0 < N < M and M >= 2"));
    }
    let inner: usize = shape.iter().skip(1).product();
    if !inner.is_multiple_of(m) {
        return Err(PruneError::Unsupported {
            path: path.into(),
            kind: format!("{shape:?}"),
            reason: format!("{inner} inputs per output are not a multiple of M = {m}"),
        });
    }
    Ok(())
}

/// Keeps the `n` largest-magnitude weights of each group of `m` consecutive weights along
/// the input axis (the flattened `in·kh·kw` axis for a convolution).
///
/// ```
/// use deepcompress_prune::unstructured::n_m_mask;
/// use ndarray::array;
/// let w = array![[0.1f32, -2.0, 0.3, 4.0, 1.0, 0.0, -1.5, 0.2]].into_dyn();
/// let keep = n_m_mask(&w, 2, 4).unwrap();
/// assert_eq!(keep, array![[false, true, false, true, true, false, true, false]].into_dyn());
/// ```
pub fn n_m_mask(values: &ArrayD<f32>, n: usize, m: usize) -> Result<ArrayD<bool>> {
    check_n_m(n, m, values.shape(), "weight")?;
    let v: Vec<f32> = values.iter().copied().collect();
    let mut keep = vec![false; v.len()];
    for (g, group) in v.chunks(m).enumerate() {
        let mut order: Vec<usize> = (0..m).collect();
        // largest first; ties keep the earlier weight
        order.sort_by(|a, b| group[*b].abs().total_cmp(&group[*a].abs()).then(a.cmp(b)));
        for &i in &order[..n] {
            keep[g * m + i] = true;
        }
    }
    Ok(ArrayD::from_shape_vec(values.raw_dim(), keep).expect("same length"))
}
