//! Residual connection: `body(x) + shortcut(x)`.

use super::{Layer, LayerSummary, Mode, layer_boilerplate};
use crate::{CoreError, Result};
use ndarray::ArrayD;

/// `y = body(x) + shortcut(x)`, where the shortcut is the identity or a projection
/// (typically a 1x1 convolution and BatchNorm when the shape changes). Children are
/// named `body` and `shortcut`.
///
/// Structured pruning must treat the channels that meet at the addition as one group:
/// the output channels of `body` and of `shortcut` (or of the block's input, for an
/// identity shortcut) are coupled.
///
/// ```
/// use deepcompress_core::layer::{Layer, Linear, Mode, Residual, Sequential};
/// use ndarray::ArrayD;
/// let body = Sequential::new().with(Linear::new(4, 4, false, 0));
/// let mut block = Residual::identity(body);
/// let y = block.forward(ArrayD::zeros(vec![2, 4]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[2, 4]);
/// ```
#[derive(Debug, Clone)]
pub struct Residual {
    body: Box<dyn Layer>,
    shortcut: Option<Box<dyn Layer>>,
}

impl Residual {
    /// A block with an identity shortcut.
    pub fn identity(body: impl Layer + 'static) -> Self {
        Self { body: Box::new(body), shortcut: None }
    }

    /// A block with a projection shortcut.
    pub fn projection(body: impl Layer + 'static, shortcut: impl Layer + 'static) -> Self {
        Self { body: Box::new(body), shortcut: Some(Box::new(shortcut)) }
    }

    /// The main branch.
    pub fn body(&self) -> &dyn Layer {
        self.body.as_ref()
    }

    /// The projection shortcut, if any.
    pub fn shortcut(&self) -> Option<&dyn Layer> {
        self.shortcut.as_deref()
    }

    fn add(a: ArrayD<f32>, b: &ArrayD<f32>, what: &str) -> Result<ArrayD<f32>> {
        if a.shape() != b.shape() {
            return Err(CoreError::shape(
                format!("Residual {what}"),
                format!("{:?} to match the body", a.shape()),
                b.shape(),
            ));
        }
        Ok(a + b)
    }
}

impl Layer for Residual {
    fn kind(&self) -> &'static str {
        "Residual"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let skip = match &mut self.shortcut {
            Some(s) => s.forward(x.clone(), mode).map_err(|e| e.at("shortcut"))?,
            None => x.clone(),
        };
        let y = self.body.forward(x, mode).map_err(|e| e.at("body"))?;
        Self::add(y, &skip, "shortcut output")
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let skip = match &mut self.shortcut {
            Some(s) => s.backward(grad.clone(), need_input_grad).map_err(|e| e.at("shortcut"))?,
            None => need_input_grad.then(|| grad.clone()),
        };
        let body = self.body.backward(grad, need_input_grad).map_err(|e| e.at("body"))?;
        match (body, skip) {
            (Some(b), Some(s)) => Ok(Some(Self::add(b, &s, "input gradient")?)),
            _ => Ok(None),
        }
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let out = self.body.output_shape(input).map_err(|e| e.at("body"))?;
        let skip = match &self.shortcut {
            Some(s) => s.output_shape(input).map_err(|e| e.at("shortcut"))?,
            None => input.to_vec(),
        };
        if out != skip {
            return Err(CoreError::shape(
                "Residual shortcut",
                format!("{out:?} to match the body"),
                &skip,
            ));
        }
        Ok(out)
    }

    fn children(&self) -> Vec<(String, &dyn Layer)> {
        let mut v = vec![("body".to_string(), self.body.as_ref())];
        if let Some(s) = &self.shortcut {
            v.push(("shortcut".to_string(), s.as_ref()));
        }
        v
    }

    fn children_mut(&mut self) -> Vec<(String, &mut Box<dyn Layer>)> {
        let mut v = vec![("body".to_string(), &mut self.body)];
        if let Some(s) = &mut self.shortcut {
            v.push(("shortcut".to_string(), s));
        }
        v
    }

    fn summarize(
        &self,
        path: &str,
        input: &[usize],
        rows: &mut Vec<LayerSummary>,
    ) -> Result<Vec<usize>> {
        let join = |n: &str| if path.is_empty() { n.to_string() } else { format!("{path}.{n}") };
        let out = self.body.summarize(&join("body"), input, rows).map_err(|e| e.at("body"))?;
        if let Some(s) = &self.shortcut {
            s.summarize(&join("shortcut"), input, rows).map_err(|e| e.at("shortcut"))?;
        }
        self.output_shape(input)?;
        Ok(out)
    }

    layer_boilerplate!();
}
