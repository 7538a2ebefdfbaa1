//! Recording the inputs a layer sees: the calibration activations that data-aware
//! compression (whitened low-rank factorisation, GPTQ, activation observers) works from.

use super::Model;
use crate::layer::{Flatten, Layer, Mode};
use crate::{CoreError, Result};
use ndarray::{ArrayD, Axis, concatenate};
use std::any::Any;
use std::collections::BTreeMap;

/// A layer in disguise: forwards to `inner` and keeps a copy of every input.
#[derive(Debug, Clone)]
struct Probe {
    inner: Box<dyn Layer>,
    seen: Vec<ArrayD<f32>>,
}

impl Layer for Probe {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        self.seen.push(x.clone());
        self.inner.forward(x, mode)
    }
    fn backward(&mut self, g: ArrayD<f32>, need: bool) -> Result<Option<ArrayD<f32>>> {
        self.inner.backward(g, need)
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.inner.output_shape(input)
    }
    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

impl Model {
    /// Runs `x` through the model in eval mode, `batch_size` samples at a time, and returns
    /// the input each layer in `paths` received, concatenated over the batch axis.
    ///
    /// The model is unchanged afterwards, also on error. Inputs are kept in memory, so pass
    /// a calibration subset (a few hundred to a few thousand samples).
    ///
    /// ```
    /// use deepcompress_core::models::lenet_300_100;
    /// use ndarray::ArrayD;
    ///
    /// let mut model = lenet_300_100(0);
    /// let x = ArrayD::<f32>::ones(vec![10, 1, 28, 28]);
    /// let seen = model.capture_inputs(&["fc2"], &x, 4)?;
    /// assert_eq!(seen["fc2"].shape(), &[10, 300]);
    /// assert!(model.capture_inputs(&["nope"], &x, 4).is_err());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn capture_inputs<S: AsRef<str>>(
        &mut self,
        paths: &[S],
        x: &ArrayD<f32>,
        batch_size: usize,
    ) -> Result<BTreeMap<String, ArrayD<f32>>> {
        for p in paths {
            let p = p.as_ref();
            self.layer(p)?;
            if paths.iter().filter(|q| q.as_ref() == p).count() > 1 {
                return Err(CoreError::param("capture paths", p, "listed twice"));
            }
            if paths.iter().any(|q| p.starts_with(&format!("{}.", q.as_ref()))) {
                return Err(CoreError::param("capture paths", p, "is inside another listed layer"));
            }
        }
        for p in paths {
            let slot = self.layer_mut(p.as_ref())?;
            let inner = std::mem::replace(slot, Box::new(Flatten::default()));
            *slot = Box::new(Probe { inner, seen: Vec::new() });
        }
        let run = self.predict(x, batch_size);
        // Put the original layers back whatever happened.
        let mut seen = BTreeMap::new();
        for p in paths {
            let p = p.as_ref();
            let slot = self.layer_mut(p).expect("probe was installed at this path");
            let mut probe = std::mem::replace(slot, Box::new(Flatten::default()));
            let probe =
                probe.as_any_mut().downcast_mut::<Probe>().expect("a probe was installed here");
            *slot = std::mem::replace(&mut probe.inner, Box::new(Flatten::default()));
            seen.insert(p.to_string(), std::mem::take(&mut probe.seen));
        }
        run?;
        seen.into_iter()
            .map(|(p, batches)| {
                let views: Vec<_> = batches.iter().map(|b| b.view()).collect();
                let all = concatenate(Axis(0), &views)
                    .map_err(|e| CoreError::shape(p.clone(), e.to_string(), x.shape()))?;
                Ok((p, all))
            })
            .collect()
    }
}
