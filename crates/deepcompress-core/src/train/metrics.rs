//! Accuracy and loss of a model on a dataset.

use super::cross_entropy;
use crate::data::Dataset;
use crate::layer::Mode;
use crate::model::Model;
use crate::{CoreError, Result};
use ndarray::Axis;
use serde::Serialize;

/// Accuracy and mean cross-entropy over a dataset.
///
/// ```
/// use deepcompress_core::train::Evaluation;
/// let e = Evaluation { accuracy: 0.97, loss: 0.1 };
/// assert!(e.accuracy > 0.9);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Evaluation {
    /// Fraction of correct top-1 predictions, in `[0, 1]`.
    pub accuracy: f32,
    /// Mean cross-entropy.
    pub loss: f32,
}

/// Evaluates `model` in eval mode on `data` in batches of `batch_size`.
///
/// ```
/// use deepcompress_core::{data::Dataset, models::mlp, train::evaluate};
/// use ndarray::ArrayD;
/// let data = Dataset::new(ArrayD::zeros(vec![4, 3]), vec![0, 1, 0, 1]).unwrap();
/// let mut m = mlp(&[3, 2], 0).unwrap();
/// let e = evaluate(&mut m, &data, 2).unwrap();
/// assert!(e.accuracy == 0.5); // constant input: one class is always predicted
/// ```
pub fn evaluate(model: &mut Model, data: &Dataset, batch_size: usize) -> Result<Evaluation> {
    if data.is_empty() || batch_size == 0 {
        return Err(CoreError::param(
            "evaluate batch_size/data",
            format!("{batch_size}/{}", data.len()),
            "need a positive batch size and data",
        ));
    }
    let (mut correct, mut loss_sum) = (0usize, 0.0f64);
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch_size) {
        let (x, y) = data.batch(chunk);
        let logits = model.forward(x, Mode::Eval)?;
        let (loss, _) = cross_entropy(&logits, &y)?;
        loss_sum += loss as f64 * chunk.len() as f64;
        for (row, &label) in logits.axis_iter(Axis(0)).zip(&y) {
            let best = row
                .iter()
                .enumerate()
                .fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
            correct += usize::from(best.0 == label);
        }
    }
    let n = data.len() as f64;
    Ok(Evaluation { accuracy: (correct as f64 / n) as f32, loss: (loss_sum / n) as f32 })
}
