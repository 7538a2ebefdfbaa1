//! Magnitude criteria: prune the weights of smallest absolute value, in one layer or
//! with one threshold across several (Han et al. 2015, arXiv 1506.02626).

use ndarray::ArrayD;

/// Sort key of weight `i`: weights already pruned come first, then by magnitude, then
/// by index, so that the selection is total and the same on every run.
fn key(values: &[f32], previous: Option<&[bool]>, i: usize) -> (f32, usize) {
    let pruned_before = previous.is_some_and(|p| !p[i]);
    (if pruned_before { -1.0 } else { values[i].abs() }, i)
}

/// A keep-mask that prunes exactly `count` weights of `values`: the smallest in
/// magnitude, counting weights already pruned by `previous` first (so masks only grow).
///
/// ```
/// use deepcompress_prune::unstructured::magnitude_mask;
/// use ndarray::array;
/// let w = array![[0.1f32, -3.0], [0.5, -0.2]].into_dyn();
/// let keep = magnitude_mask(&w, None, 2);
/// assert_eq!(keep, array![[false, true], [true, false]].into_dyn());
/// ```
pub fn magnitude_mask(
    values: &ArrayD<f32>,
    previous: Option<&ArrayD<bool>>,
    count: usize,
) -> ArrayD<bool> {
    let v: Vec<f32> = values.iter().copied().collect();
    let p: Option<Vec<bool>> = previous.map(|p| p.iter().copied().collect());
    let mut keep = vec![true; v.len()];
    for i in smallest(&v, p.as_deref(), count) {
        keep[i] = false;
    }
    ArrayD::from_shape_vec(values.raw_dim(), keep).expect("same length")
}

/// Indices of the `count` smallest keys (all of them when `count >= len`).
pub(crate) fn smallest(values: &[f32], previous: Option<&[bool]>, count: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let count = count.min(idx.len());
    if count == 0 {
        return Vec::new();
    }
    let cmp = |a: &usize, b: &usize| {
        let (ka, kb) = (key(values, previous, *a), key(values, previous, *b));
        ka.0.total_cmp(&kb.0).then(ka.1.cmp(&kb.1))
    };
    if count < idx.len() {
        idx.select_nth_unstable_by(count - 1, cmp);
    }
    idx.truncate(count);
    idx
}

/// One magnitude threshold across layers: keep-masks for each of `layers` that together
/// prune exactly `count` of their weights (global magnitude pruning).
///
/// ```
/// use deepcompress_prune::unstructured::global_magnitude_masks;
/// use ndarray::array;
/// let a = array![[0.1f32, 5.0]].into_dyn();
/// let b = array![[0.2f32, 0.3, 4.0]].into_dyn();
/// let masks = global_magnitude_masks(&[(&a, None), (&b, None)], 3);
/// assert_eq!(masks[0], array![[false, true]].into_dyn());
/// assert_eq!(masks[1], array![[false, false, true]].into_dyn());
/// ```
pub fn global_magnitude_masks(
    layers: &[(&ArrayD<f32>, Option<&ArrayD<bool>>)],
    count: usize,
) -> Vec<ArrayD<bool>> {
    let mut values = Vec::new();
    let mut previous = Vec::new();
    for (v, p) in layers {
        values.extend(v.iter().copied());
        match p {
            Some(p) => previous.extend(p.iter().copied()),
            None => previous.extend(std::iter::repeat_n(true, v.len())),
        }
    }
    let mut keep = vec![true; values.len()];
    for i in smallest(&values, Some(&previous), count) {
        keep[i] = false;
    }
    let mut out = Vec::with_capacity(layers.len());
    let mut start = 0;
    for (v, _) in layers {
        let part = keep[start..start + v.len()].to_vec();
        out.push(ArrayD::from_shape_vec(v.raw_dim(), part).expect("same length"));
        start += v.len();
    }
    out
}
