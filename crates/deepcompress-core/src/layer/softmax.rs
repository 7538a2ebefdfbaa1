//! Softmax and log-softmax over the last axis (numerically stable: the row maximum is
//! subtracted first).

use super::{Layer, Mode, layer_boilerplate, no_cache};
use crate::{CoreError, Result};
use ndarray::{ArrayD, Axis, Zip};

/// Row-wise log-softmax of the last axis, in place.
pub(crate) fn softmax_log_inplace(x: &mut ArrayD<f32>) {
    let last = Axis(x.ndim().saturating_sub(1));
    for mut row in x.lanes_mut(last) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let lse = row.fold(0.0f32, |s, &v| s + (v - max).exp()).ln() + max;
        row.mapv_inplace(|v| v - lse);
    }
}

fn check(kind: &str, x: &ArrayD<f32>) -> Result<()> {
    if x.ndim() == 0 || x.shape().last() == Some(&0) {
        return Err(CoreError::shape(kind, "[.., classes > 0]", x.shape()));
    }
    Ok(())
}

/// Softmax over the last axis.
///
/// ```
/// use deepcompress_core::layer::{Layer, Mode, Softmax};
/// use ndarray::array;
/// let y = Softmax::default().forward(array![[0.0f32, 0.0]].into_dyn(), Mode::Eval).unwrap();
/// assert_eq!(y, array![[0.5f32, 0.5]].into_dyn());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Softmax {
    output: Option<ArrayD<f32>>,
}

impl Layer for Softmax {
    fn kind(&self) -> &'static str {
        "Softmax"
    }
    fn forward(&mut self, mut x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        check("Softmax", &x)?;
        softmax_log_inplace(&mut x);
        x.mapv_inplace(f32::exp);
        self.output = (mode == Mode::Train).then(|| x.clone());
        Ok(x)
    }
    fn backward(
        &mut self,
        mut grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let y = self.output.as_ref().ok_or_else(|| no_cache("Softmax"))?;
        if grad.shape() != y.shape() {
            return Err(CoreError::shape(
                "Softmax backward",
                format!("{:?}", y.shape()),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        // dx = y * (g - <g, y>) row by row.
        let last = Axis(y.ndim() - 1);
        for (mut g, yr) in grad.lanes_mut(last).into_iter().zip(y.lanes(last)) {
            let dot: f32 = g.iter().zip(yr.iter()).map(|(a, b)| a * b).sum();
            Zip::from(&mut g).and(&yr).for_each(|g, &y| *g = y * (*g - dot));
        }
        Ok(Some(grad))
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    layer_boilerplate!();
}

/// Log-softmax over the last axis.
///
/// ```
/// use deepcompress_core::layer::{Layer, LogSoftmax, Mode};
/// use ndarray::array;
/// let y = LogSoftmax::default().forward(array![[1000.0f32, 1000.0]].into_dyn(), Mode::Eval).unwrap();
/// assert!((y[[0, 0]] + 2f32.ln()).abs() < 1e-4); // no overflow
/// ```
#[derive(Debug, Clone, Default)]
pub struct LogSoftmax {
    output: Option<ArrayD<f32>>,
}

impl Layer for LogSoftmax {
    fn kind(&self) -> &'static str {
        "LogSoftmax"
    }
    fn forward(&mut self, mut x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        check("LogSoftmax", &x)?;
        softmax_log_inplace(&mut x);
        self.output = (mode == Mode::Train).then(|| x.clone());
        Ok(x)
    }
    fn backward(
        &mut self,
        mut grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let y = self.output.as_ref().ok_or_else(|| no_cache("LogSoftmax"))?;
        if grad.shape() != y.shape() {
            return Err(CoreError::shape(
                "LogSoftmax backward",
                format!("{:?}", y.shape()),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        // dx = g - softmax * sum(g) row by row.
        let last = Axis(y.ndim() - 1);
        for (mut g, yr) in grad.lanes_mut(last).into_iter().zip(y.lanes(last)) {
            let total = g.sum();
            Zip::from(&mut g).and(&yr).for_each(|g, &ly| *g -= ly.exp() * total);
        }
        Ok(Some(grad))
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    layer_boilerplate!();
}
