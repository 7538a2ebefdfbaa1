//! [`Sparsify`]: stores pruned `Linear` and `Conv2d` weights as CSR inference layers.

use super::{CONV_INDEX_BITS, FC_INDEX_BITS, SparseTensor};
use crate::targets::{WeightKind, compressed_layer, weight, weight_layers};
use crate::{PruneError, Result};
use deepcompress_core::layer::Layer;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};

/// Replaces each selected `Linear` by a `CompressedLinear` and each `Conv2d` by a
/// `CompressedConv2d` over a [`SparseTensor`] of its weight, so that the pruned model is
/// stored and run sparse. Relative indices default to Deep Compression's widths (5 bits
/// for fc, 4 for conv).
///
/// Layers sparser than `min_sparsity` (default 0) stay dense: a CSR weight only runs
/// faster past the break-even sparsity written in `docs/benchmarks.md`.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::sparse::Sparsify;
/// use deepcompress_prune::unstructured::{MagnitudePrune, Sparsity};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let x = ndarray::ArrayD::<f32>::ones(ndarray::IxDyn(&[2, 784]));
/// MagnitudePrune::new(Selector::all(), Sparsity::Uniform(0.9))
///     .apply(&mut model, &mut PassContext::new(0)).unwrap();
/// let before = model.predict(&x, 2).unwrap();
/// Sparsify::new(Selector::all()).apply(&mut model, &mut PassContext::new(0)).unwrap();
/// assert_eq!(model.layer("fc1").unwrap().encoding(), "csr");
/// let after = model.predict(&x, 2).unwrap();
/// assert!((before - after).iter().all(|d| d.abs() < 1e-4));
/// ```
#[derive(Debug, Clone)]
pub struct Sparsify {
    selector: Selector,
    fc_bits: u32,
    conv_bits: u32,
    min_sparsity: f64,
}

impl Sparsify {
    /// Sparse storage for the selected layers with the default index widths.
    pub fn new(selector: Selector) -> Self {
        Self { selector, fc_bits: FC_INDEX_BITS, conv_bits: CONV_INDEX_BITS, min_sparsity: 0.0 }
    }

    /// Relative-index widths for fc and conv layers (1 to 16 bits).
    pub fn index_bits(mut self, fc: u32, conv: u32) -> Self {
        self.fc_bits = fc;
        self.conv_bits = conv;
        self
    }

    /// Leaves layers with fewer zeros than this fraction dense.
    pub fn min_sparsity(mut self, s: f64) -> Self {
        self.min_sparsity = s;
        self
    }

    fn replacements(&self, model: &Model) -> Result<Vec<(String, Box<dyn Layer>)>> {
        super::relative_index::check_index_bits(self.fc_bits)?;
        super::relative_index::check_index_bits(self.conv_bits)?;
        crate::error::check_sparsity("min_sparsity", self.min_sparsity)?;
        let mut out = Vec::new();
        for (path, kind) in weight_layers(model, &self.selector)? {
            let w = weight(model, &path)?.value();
            let zeros = w.iter().filter(|v| **v == 0.0).count();
            if (zeros as f64) < self.min_sparsity * w.len() as f64 {
                continue;
            }
            let bits = if kind == WeightKind::Linear { self.fc_bits } else { self.conv_bits };
            let tensor = SparseTensor::from_dense(w, bits)?;
            out.push((path.clone(), compressed_layer(model, &path, Box::new(tensor))?));
        }
        if out.is_empty() {
            return Err(PruneError::NothingSelected {
                what: "Linear or Conv2d".into(),
                hint: format!(" at least {} sparse", self.min_sparsity),
            });
        }
        Ok(out)
    }
}

impl Pass for Sparsify {
    fn name(&self) -> String {
        "sparsify".into()
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.replacements(model).map(|_| ()).map_err(|e| e.into_core("sparsify"))
    }

    fn apply(
        &self,
        model: &mut Model,
        _ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let layers = self.replacements(model).map_err(|e| e.into_core("sparsify"))?;
        let mut report = PassReport { pass: self.name(), ..PassReport::default() };
        for (path, layer) in layers {
            report.notes.push(format!("{path}: {}", layer.encoding()));
            model.replace(&path, layer)?;
            report.layers.push(path);
        }
        Ok(report)
    }
}
