//! [`EntropyCode`]: the last step of Deep Compression as a pipeline pass.

use super::{Container, EncodeOptions, decode_model, encode_model};
use deepcompress_core::model::Model;
use deepcompress_core::pass::{Pass, PassContext, PassReport};

/// Encodes the model into the container format (sparse positions, shared values,
/// Huffman-coded where smaller; Han, Mao and Dally 2015, arXiv 1510.00149, sec. 4) and
/// replaces it by the model decoded from those bytes, so that what follows in a pipeline
/// (a report, an evaluation) sees exactly what a reader of the file gets. Its layers
/// report the file's sizes.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::coding::EntropyCode;
/// use deepcompress_prune::unstructured::{MagnitudePrune, Sparsity};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// MagnitudePrune::new(Selector::all(), Sparsity::Uniform(0.9))
///     .apply(&mut model, &mut PassContext::new(0)).unwrap();
/// let report = EntropyCode::default().apply(&mut model, &mut PassContext::new(0)).unwrap();
/// assert!(report.notes[0].starts_with("file: "));
/// assert_eq!(report.layers, vec!["fc1", "fc2", "fc3"]);
/// assert_eq!(model.layer("fc1").unwrap().encoding(), "csr");
/// ```
#[derive(Debug, Clone, Default)]
pub struct EntropyCode {
    options: EncodeOptions,
}

impl EntropyCode {
    /// Encoding with the given options.
    pub fn new(options: EncodeOptions) -> Self {
        Self { options }
    }

    /// The container for `model` (what [`Pass::apply`] writes through).
    pub fn container(&self, model: &Model) -> crate::Result<Container> {
        encode_model(model, &self.options)
    }
}

impl Pass for EntropyCode {
    fn name(&self) -> String {
        if self.options.huffman { "huffman-encode".into() } else { "encode".into() }
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.container(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        _ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let container = self.container(model).map_err(|e| e.into_core(&name))?;
        let bytes = container.to_bytes();
        let parsed = Container::from_bytes(&bytes).map_err(|e| e.into_core(&name))?;
        let decoded = decode_model(&parsed, model).map_err(|e| e.into_core(&name))?;
        *model = decoded;
        // one entry per layer (a layer's weight and bias are two records)
        let mut layers: Vec<String> = Vec::new();
        for r in &parsed.records {
            let layer = r.path.rsplit_once('.').map_or(r.path.as_str(), |(l, _)| l);
            if layers.last().is_none_or(|l| l != layer) {
                layers.push(layer.to_string());
            }
        }
        Ok(PassReport { pass: name, layers, notes: vec![format!("file: {} bytes", bytes.len())] })
    }
}
