//! [`PrepareBinary`] and [`ConvertBinary`]: training and storing binary or ternary weights.

use super::binary_connect::{BinaryConnect, BinaryScale};
use super::ternary::TernaryWeights;
use crate::error::{QuantError, Result};
use crate::qat::convert::{Converted, at_layer, compressed, swap_in, weight_param};
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use deepcompress_core::tensor::Tensor;
use deepcompress_core::{Constraint, Param};

/// Which 1- or 2-bit weights [`PrepareBinary`] trains.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BinaryMethod {
    /// [`BinaryConnect`] with the given scaling (XNOR-Net: [`BinaryScale::PerChannel`]).
    BinaryConnect(BinaryScale),
    /// [`TernaryWeights`] (TWN) with threshold factor (0.7 in the paper) and per-channel
    /// thresholds and scales when `per_channel`.
    Ternary {
        /// Threshold factor.
        factor: f32,
        /// Per output channel instead of per layer.
        per_channel: bool,
    },
}

impl BinaryMethod {
    fn constraint(&self) -> Result<Box<dyn Constraint>> {
        Ok(match *self {
            BinaryMethod::BinaryConnect(s) => Box::new(BinaryConnect::new(s)),
            BinaryMethod::Ternary { factor, per_channel } => {
                Box::new(TernaryWeights::new(factor, per_channel)?)
            }
        })
    }
}

/// Attaches a binary ([`BinaryConnect`]) or ternary ([`TernaryWeights`]) constraint to the
/// weights of the selected Linear and Conv2d layers, for training with the core trainer;
/// [`ConvertBinary`] then stores them bit-packed. Biases stay `f32`. Keeping the first
/// and last layers at higher precision is common (select the others only).
///
/// Errors (model unchanged): a selector matching no Linear or Conv2d, NaN or infinite
/// weights (named by layer), a bad threshold factor.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{BinaryMethod, BinaryScale, ConvertBinary, PrepareBinary};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// PrepareBinary::new(Selector::all(), BinaryMethod::BinaryConnect(BinaryScale::PerChannel))
///     .apply(&mut model, &mut PassContext::new(0))?;
/// // ... train here ...
/// ConvertBinary::new(Selector::all()).apply(&mut model, &mut PassContext::new(0))?;
/// assert_eq!(model.layer("fc1")?.encoding(), "binary");
/// let summary = model.summary(&[1, 784])?;
/// let bits = summary.rows.iter().find(|r| r.path == "fc1").unwrap().cost.storage_bits;
/// assert_eq!(bits, 784 * 300 + 300 * 32 + 300 * 32); // signs, scales, bias
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareBinary {
    selector: Selector,
    method: BinaryMethod,
}

impl PrepareBinary {
    /// Binarizes or ternarizes the selected layers' weights.
    pub fn new(selector: Selector, method: BinaryMethod) -> Self {
        Self { selector, method }
    }

    fn prepare(&self, model: &Model) -> Result<Vec<String>> {
        let c = self.method.constraint()?;
        let selected = model.select(&self.selector)?;
        let mut out = Vec::new();
        for p in &selected {
            let Some(w) = weight_param(model.layer(p)?) else { continue };
            stored(c.as_ref(), w).map_err(|e| at_layer(e, p))?;
            out.push(p.clone());
        }
        if out.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                format!("matched no Linear or Conv2d layer (it matched {selected:?})"),
            ));
        }
        Ok(out)
    }
}

/// The stored tensor for a weight under a binary or ternary constraint; `None` for other
/// constraints.
fn stored(c: &dyn Constraint, w: &Param) -> Result<Option<Box<dyn Tensor>>> {
    let any = c.as_any();
    Ok(if let Some(b) = any.downcast_ref::<BinaryConnect>() {
        // The shadow weights as the constraint will hold them (clipped).
        let mut v = w.value().clone();
        let mut b = b.clone();
        b.project(&mut v);
        Some(Box::new(b.binarize(&v)?))
    } else if let Some(t) = any.downcast_ref::<TernaryWeights>() {
        Some(Box::new(t.ternarize(w.value())?))
    } else {
        None
    })
}

impl Pass for PrepareBinary {
    fn name(&self) -> String {
        match self.method {
            BinaryMethod::BinaryConnect(_) => "prepare-binary-connect".into(),
            BinaryMethod::Ternary { .. } => "prepare-ternary".into(),
        }
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.prepare(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        _ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let paths = self.prepare(model).map_err(|e| e.into_core(&name))?;
        let c = self.method.constraint().map_err(|e| e.into_core(&name))?;
        for p in &paths {
            let layer = model.layer_mut(p)?;
            if let Some((_, w)) = layer.params_mut().into_iter().find(|(n, _)| *n == "weight") {
                w.set_constraint(c.clone());
            }
        }
        Ok(PassReport { pass: name, layers: paths, notes: Vec::new() })
    }
}

/// Replaces each selected Linear or Conv2d whose weight carries a [`BinaryConnect`] or
/// [`TernaryWeights`] constraint by a `CompressedLinear` / `CompressedConv2d` over a
/// [`BinaryTensor`](crate::BinaryTensor) or [`TernaryTensor`](crate::TernaryTensor)
/// with exactly the trained forward values, so the report counts 1 or 2 bits per weight
/// plus the scales. Errors (model unchanged): nothing to convert, non-finite weights.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{BinaryMethod, ConvertBinary, PrepareBinary};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let twn = BinaryMethod::Ternary { factor: 0.7, per_channel: false };
/// PrepareBinary::new(Selector::path("fc2"), twn).apply(&mut model, &mut PassContext::new(0))?;
/// let x = ndarray::ArrayD::from_elem(vec![1, 784], 0.5f32);
/// let trained = model.predict(&x, 1)?;
/// ConvertBinary::new(Selector::all()).apply(&mut model, &mut PassContext::new(0))?;
/// assert_eq!(model.layer("fc2")?.encoding(), "ternary");
/// assert_eq!(model.layer("fc1")?.encoding(), "f32");
/// assert!((&trained - &model.predict(&x, 1)?).iter().all(|d| d.abs() < 1e-4));
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertBinary {
    selector: Selector,
}

impl ConvertBinary {
    /// Converts the selected layers that were trained binary or ternary.
    pub fn new(selector: Selector) -> Self {
        Self { selector }
    }

    fn prepare(&self, model: &Model) -> Result<Vec<Converted>> {
        let mut out = Vec::new();
        for p in model.select(&self.selector)? {
            let layer = model.layer(&p)?;
            let Some(w) = weight_param(layer) else { continue };
            let Some(c) = w.constraint() else { continue };
            let Some(t) = stored(c, w).map_err(|e| at_layer(e, &p))? else { continue };
            if let Some((l, bits)) = compressed(&p, layer, t)? {
                out.push((p, l, bits));
            }
        }
        if out.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                "matched no layer prepared for binary or ternary weights",
            ));
        }
        Ok(out)
    }
}

impl Pass for ConvertBinary {
    fn name(&self) -> String {
        "convert-binary".into()
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.prepare(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        _ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        let name = self.name();
        let layers = self.prepare(model).map_err(|e| e.into_core(&name))?;
        swap_in(model, name, layers)
    }
}
