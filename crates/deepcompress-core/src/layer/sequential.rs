//! An ordered container of named layers, the root of every model tree.

use super::{Layer, LayerSummary, Mode, layer_boilerplate};
use crate::Result;
use ndarray::ArrayD;

/// Layers applied in order, named `0, 1, 2, ...` like `nn.Sequential` unless given names.
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear, Mode, Relu, Sequential};
/// use ndarray::ArrayD;
/// let mut net = Sequential::new()
///     .with(Linear::new(4, 8, true, 0))
///     .with(Relu::default())
///     .with(Linear::new(8, 2, true, 1));
/// assert_eq!(net.len(), 3);
/// let y = net.forward(ArrayD::zeros(vec![5, 4]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[5, 2]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Layer>)>,
}

impl Sequential {
    /// An empty container.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a layer named by its index (builder style).
    pub fn with(mut self, layer: impl Layer + 'static) -> Self {
        self.push(Box::new(layer));
        self
    }

    /// Appends a layer under a given name (builder style).
    pub fn with_named(mut self, name: &str, layer: impl Layer + 'static) -> Self {
        self.push_named(name, Box::new(layer));
        self
    }

    /// Appends a layer named by its index.
    pub fn push(&mut self, layer: Box<dyn Layer>) {
        let name = self.layers.len().to_string();
        self.layers.push((name, layer));
    }

    /// Appends a layer under a given name.
    pub fn push_named(&mut self, name: &str, layer: Box<dyn Layer>) {
        self.layers.push((name.to_string(), layer));
    }

    /// Builds a container from boxed layers named by index.
    pub fn from_layers(layers: Vec<Box<dyn Layer>>) -> Self {
        let mut s = Self::new();
        for l in layers {
            s.push(l);
        }
        s
    }

    /// Number of direct children.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when there are no children.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Direct children with their names.
    pub fn layers(&self) -> &[(String, Box<dyn Layer>)] {
        &self.layers
    }

    /// Direct children with their names, mutable (replace a box to swap a layer).
    pub fn layers_mut(&mut self) -> &mut Vec<(String, Box<dyn Layer>)> {
        &mut self.layers
    }
}

impl Layer for Sequential {
    fn kind(&self) -> &'static str {
        "Sequential"
    }

    fn forward(&mut self, mut x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        for (name, layer) in &mut self.layers {
            x = layer.forward(x, mode).map_err(|e| e.at(name))?;
        }
        Ok(x)
    }

    fn backward(
        &mut self,
        mut grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        for (i, (name, layer)) in self.layers.iter_mut().enumerate().rev() {
            let need = i > 0 || need_input_grad;
            match layer.backward(grad, need).map_err(|e| e.at(name))? {
                Some(g) => grad = g,
                None => return Ok(None),
            }
        }
        Ok(Some(grad))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for (name, layer) in &self.layers {
            shape = layer.output_shape(&shape).map_err(|e| e.at(name))?;
        }
        Ok(shape)
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        self.layers.iter().map(|(n, l)| (n.clone(), l.as_ref())).collect()
    }

    fn children_mut(&mut self) -> Vec<(String, &mut Box<dyn Layer>)> {
        self.layers.iter_mut().map(|(n, l)| (n.clone(), l)).collect()
    }

    fn summarize(
        &self,
        path: &str,
        input: &[usize],
        rows: &mut Vec<LayerSummary>,
    ) -> Result<Vec<usize>> {
        let mut shape = input.to_vec();
        for (name, layer) in &self.layers {
            let child = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            shape = layer.summarize(&child, &shape, rows).map_err(|e| e.at(name))?;
        }
        Ok(shape)
    }

    layer_boilerplate!();
}

impl From<Vec<Box<dyn Layer>>> for Sequential {
    fn from(layers: Vec<Box<dyn Layer>>) -> Self {
        Self::from_layers(layers)
    }
}
