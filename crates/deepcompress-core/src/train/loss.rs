//! Loss functions returning the mean loss and its gradient with respect to the prediction.

use crate::layer::softmax_log_inplace;
use crate::{CoreError, Result, ensure_finite};
use ndarray::{ArrayD, Axis};

/// Cross-entropy of `logits` `[n, classes]` against class `labels`, averaged over the
/// batch, computed from logits through a stable log-softmax. Returns `(loss, dlogits)`.
///
/// ```
/// use deepcompress_core::train::cross_entropy;
/// use ndarray::array;
/// let (loss, grad) = cross_entropy(&array![[0.0f32, 0.0]].into_dyn(), &[1]).unwrap();
/// assert!((loss - 2f32.ln()).abs() < 1e-6);
/// assert_eq!(grad, array![[0.5f32, -0.5]].into_dyn());
/// assert!(cross_entropy(&array![[0.0f32, 0.0]].into_dyn(), &[2]).is_err());
/// ```
pub fn cross_entropy(logits: &ArrayD<f32>, labels: &[usize]) -> Result<(f32, ArrayD<f32>)> {
    if logits.ndim() != 2 || logits.shape()[0] != labels.len() || logits.shape()[1] == 0 {
        return Err(CoreError::shape(
            "cross_entropy logits",
            format!("[{}, classes]", labels.len()),
            logits.shape(),
        ));
    }
    ensure_finite(logits.iter(), "cross_entropy", "logits")?;
    let classes = logits.shape()[1];
    if let Some(&bad) = labels.iter().find(|&&l| l >= classes) {
        return Err(CoreError::param("label", bad, format!("must be below the {classes} classes")));
    }
    let n = labels.len() as f32;
    let mut logp = logits.clone();
    softmax_log_inplace(&mut logp);
    let loss = -labels.iter().enumerate().map(|(i, &l)| logp[[i, l]]).sum::<f32>() / n;
    let mut grad = logp.mapv(f32::exp);
    for (i, mut row) in grad.axis_iter_mut(Axis(0)).enumerate() {
        row[labels[i]] -= 1.0;
    }
    grad /= n;
    Ok((loss, grad))
}

/// Mean squared error averaged over every value. Returns `(loss, dpred)`.
///
/// ```
/// use deepcompress_core::train::mse;
/// use ndarray::array;
/// let (loss, grad) = mse(&array![1.0f32, 3.0].into_dyn(), &array![1.0f32, 1.0].into_dyn()).unwrap();
/// assert_eq!(loss, 2.0);
/// assert_eq!(grad, array![0.0f32, 2.0].into_dyn());
/// ```
pub fn mse(pred: &ArrayD<f32>, target: &ArrayD<f32>) -> Result<(f32, ArrayD<f32>)> {
    if pred.shape() != target.shape() || pred.is_empty() {
        return Err(CoreError::shape(
            "mse prediction",
            format!("{:?} (the target's, non-empty)", target.shape()),
            pred.shape(),
        ));
    }
    ensure_finite(pred.iter().chain(target.iter()), "mse", "prediction or target")?;
    let diff = pred - target;
    let n = diff.len() as f32;
    let loss = diff.iter().map(|d| d * d).sum::<f32>() / n;
    Ok((loss, diff * (2.0 / n)))
}
