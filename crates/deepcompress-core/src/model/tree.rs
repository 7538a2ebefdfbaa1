//! [`Model`]: a tree of layers with dotted paths, forward/backward and tree surgery.

use super::Selector;
use super::summary::ModelSummary;
use crate::error::ensure_finite_slice;
use crate::layer::{Layer, Mode, Sequential};
use crate::param::Param;
use crate::{CoreError, Result, ensure_finite};
use ndarray::{ArrayD, Axis, concatenate};

/// A network: a root [`Sequential`] whose descendants are addressed by dotted paths that
/// match PyTorch `state_dict` names (`features.0` holds `features.0.weight`).
///
/// ```
/// use deepcompress_core::layer::{Linear, Relu, Sequential};
/// use deepcompress_core::model::{Model, Selector};
/// let mut model = Model::new(
///     Sequential::new()
///         .with_named("fc1", Linear::new(4, 8, true, 0))
///         .with_named("act", Relu::default())
///         .with_named("fc2", Linear::new(8, 2, true, 1)),
/// );
/// assert_eq!(model.select(&Selector::kinds(&["Linear"])).unwrap(), vec!["fc1", "fc2"]);
/// // Replace one layer by two in one call: `fc1` becomes `fc1.0` and `fc1.1`.
/// model
///     .replace_with_sequence("fc1", vec![Box::new(Linear::new(4, 2, false, 2)), Box::new(Linear::new(2, 8, true, 3))])
///     .unwrap();
/// assert!(model.layer("fc1.1").is_ok());
/// assert_eq!(model.num_params(), 4 * 2 + 2 * 8 + 8 + 8 * 2 + 2);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Model {
    root: Sequential,
}

impl Model {
    /// Wraps a root container.
    pub fn new(root: Sequential) -> Self {
        Self { root }
    }

    /// The root container.
    pub fn root(&self) -> &Sequential {
        &self.root
    }

    /// The root container, mutable.
    pub fn root_mut(&mut self) -> &mut Sequential {
        &mut self.root
    }

    /// Runs the network. NaN or infinite inputs are refused before any layer runs.
    pub fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        match x.as_slice_memory_order() {
            Some(s) => ensure_finite_slice(s, "model input", "input batch")?,
            None => ensure_finite(x.iter(), "model input", "input batch")?,
        }
        self.root.forward(x, mode)
    }

    /// Back-propagates the loss gradient with respect to the output, accumulating
    /// parameter gradients (the input gradient is not computed).
    pub fn backward(&mut self, grad: ArrayD<f32>) -> Result<()> {
        self.root.backward(grad, false).map(|_| ())
    }

    /// Eval-mode outputs for `x`, computed in batches of `batch_size` samples.
    pub fn predict(&mut self, x: &ArrayD<f32>, batch_size: usize) -> Result<ArrayD<f32>> {
        if batch_size == 0 {
            return Err(CoreError::param("batch_size", 0, "must be positive"));
        }
        let n = x.shape().first().copied().unwrap_or(0);
        let mut outs = Vec::new();
        for start in (0..n).step_by(batch_size) {
            let end = (start + batch_size).min(n);
            let xb = x.slice_axis(Axis(0), (start..end).into()).to_owned();
            outs.push(self.forward(xb, Mode::Eval)?);
        }
        if outs.is_empty() {
            return Err(CoreError::shape("predict", "at least one sample", x.shape()));
        }
        let views: Vec<_> = outs.iter().map(|o| o.view()).collect();
        concatenate(Axis(0), &views)
            .map_err(|e| CoreError::shape("predict", e.to_string(), x.shape()))
    }

    /// The layer at `path`.
    pub fn layer(&self, path: &str) -> Result<&dyn Layer> {
        let mut node: &dyn Layer = &self.root;
        for seg in split(path)? {
            node = node
                .children()
                .into_iter()
                .find(|(n, _)| n == seg)
                .map(|(_, l)| l)
                .ok_or_else(|| self.unknown(path))?;
        }
        Ok(node)
    }

    /// The slot holding the layer at `path`, so that it can be modified or replaced.
    pub fn layer_mut(&mut self, path: &str) -> Result<&mut Box<dyn Layer>> {
        // Look up immutably first so that the error can list the existing paths.
        self.layer(path)?;
        let segs = split(path)?;
        let (last, parents) = segs.split_last().expect("split() never returns an empty path");
        let mut node: &mut dyn Layer = &mut self.root;
        for seg in parents {
            node = child_mut(node, seg).expect("path checked above").as_mut();
        }
        Ok(child_mut(node, last).expect("path checked above"))
    }

    /// Downcasts the layer at `path` to a concrete type.
    pub fn layer_as<T: 'static>(&self, path: &str) -> Result<&T> {
        let l = self.layer(path)?;
        let kind = l.kind();
        l.as_any().downcast_ref::<T>().ok_or_else(|| CoreError::UnknownPath {
            path: path.to_string(),
            hint: format!(" of the requested type (it is a {kind})"),
        })
    }

    /// Replaces the layer at `path`, returning the old one. The new layer's output shape
    /// is not checked here; [`Model::summary`] checks a whole model.
    pub fn replace(&mut self, path: &str, layer: Box<dyn Layer>) -> Result<Box<dyn Layer>> {
        Ok(std::mem::replace(self.layer_mut(path)?, layer))
    }

    /// Replaces the layer at `path` by a sequence named `path.0`, `path.1`, ... (one line
    /// to turn a Linear into two low-rank Linears); returns the old layer.
    pub fn replace_with_sequence(
        &mut self,
        path: &str,
        layers: Vec<Box<dyn Layer>>,
    ) -> Result<Box<dyn Layer>> {
        if layers.is_empty() {
            return Err(CoreError::param("replacement layers", path, "need at least one layer"));
        }
        self.replace(path, Box::new(Sequential::from_layers(layers)))
    }

    /// Every node's path in depth-first order (the root, whose path is empty, excluded).
    pub fn paths(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit(|p, _| out.push(p.to_string()));
        out
    }

    /// Calls `f` on every node below the root in depth-first order with its path.
    pub fn visit<'a>(&'a self, mut f: impl FnMut(&str, &'a dyn Layer)) {
        fn go<'a>(layer: &'a dyn Layer, prefix: &str, f: &mut dyn FnMut(&str, &'a dyn Layer)) {
            for (name, child) in layer.children() {
                let path = join(prefix, &name);
                f(&path, child);
                go(child, &path, f);
            }
        }
        go(&self.root, "", &mut f);
    }

    /// Paths of the layers a selector picks, in model order. An include pattern without
    /// wildcards that names no layer is an error (a typo should not silently select nothing).
    pub fn select(&self, selector: &Selector) -> Result<Vec<String>> {
        for pattern in selector.includes() {
            if !pattern.contains('*') {
                self.layer(pattern)?;
            }
        }
        let mut out = Vec::new();
        self.visit(|p, l| {
            if selector.matches(p, l) {
                out.push(p.to_string());
            }
        });
        Ok(out)
    }

    /// Calls `f` on every parameter with its full name (`fc1.weight`).
    pub fn for_each_param<'a>(&'a self, mut f: impl FnMut(&str, &'a Param)) {
        for (name, p) in self.root.params() {
            f(name, p);
        }
        self.visit(|path, l| {
            for (name, p) in l.params() {
                f(&join(path, name), p);
            }
        });
    }

    /// Calls `f` on every parameter, mutable, with its full name.
    pub fn for_each_param_mut(&mut self, mut f: impl FnMut(&str, &mut Param)) {
        fn go(layer: &mut dyn Layer, prefix: &str, f: &mut dyn FnMut(&str, &mut Param)) {
            for (name, p) in layer.params_mut() {
                f(&join(prefix, name), p);
            }
            for (name, child) in layer.children_mut() {
                go(child.as_mut(), &join(prefix, &name), f);
            }
        }
        go(&mut self.root, "", &mut f);
    }

    /// Calls `f` on every buffer (`running_mean`, ...), mutable, with its full name.
    pub fn for_each_buffer_mut(&mut self, mut f: impl FnMut(&str, &mut ArrayD<f32>)) {
        fn go(layer: &mut dyn Layer, prefix: &str, f: &mut dyn FnMut(&str, &mut ArrayD<f32>)) {
            for (name, b) in layer.buffers_mut() {
                f(&join(prefix, name), b);
            }
            for (name, child) in layer.children_mut() {
                go(child.as_mut(), &join(prefix, &name), f);
            }
        }
        go(&mut self.root, "", &mut f);
    }

    /// Gives every random layer (dropout) a new seed.
    pub fn reseed(&mut self, seed: u64) {
        fn go(layer: &mut dyn Layer, seed: &mut u64) {
            layer.reseed(*seed);
            *seed = seed.wrapping_add(1);
            for (_, child) in layer.children_mut() {
                go(child.as_mut(), seed);
            }
        }
        let mut s = seed;
        go(&mut self.root, &mut s);
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self) {
        self.for_each_param_mut(|_, p| p.zero_grad());
    }

    /// Total number of parameter values.
    pub fn num_params(&self) -> usize {
        let mut n = 0;
        self.for_each_param(|_, p| n += p.len());
        n
    }

    /// Per-layer shapes, parameters, storage and MACs for an input shape (batch first).
    pub fn summary(&self, input: &[usize]) -> Result<ModelSummary> {
        let mut rows = Vec::new();
        let output = self.root.summarize("", input, &mut rows)?;
        Ok(ModelSummary::new(input.to_vec(), output, rows))
    }

    fn unknown(&self, path: &str) -> CoreError {
        let mut near: Vec<String> =
            self.paths().into_iter().filter(|p| !p.contains('.')).take(12).collect();
        if near.is_empty() {
            near.push("(model is empty)".into());
        }
        CoreError::UnknownPath {
            path: path.to_string(),
            hint: format!("; top-level layers: {}", near.join(", ")),
        }
    }
}

fn child_mut<'a>(node: &'a mut dyn Layer, seg: &str) -> Option<&'a mut Box<dyn Layer>> {
    node.children_mut().into_iter().find(|(n, _)| n == seg).map(|(_, l)| l)
}

fn split(path: &str) -> Result<Vec<&str>> {
    let segs: Vec<&str> = path.split('.').collect();
    if path.is_empty() || segs.iter().any(|s| s.is_empty()) {
        return Err(CoreError::UnknownPath {
            path: path.to_string(),
            hint: " (empty path segment)".into(),
        });
    }
    Ok(segs)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}
