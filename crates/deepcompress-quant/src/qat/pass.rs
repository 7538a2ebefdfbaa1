//! [`PrepareQat`] and [`ConvertQat`]: quantization-aware training as two passes.

use super::convert::{Converted, at_layer, compressed, swap_in, weight_param};
use super::fake_quant::FakeQuant;
use super::lsq::LsqActivation;
use super::lsq_weight::LsqWeight;
use super::pact::Pact;
use crate::error::{QuantError, Result};
use crate::scheme::QuantScheme;
use deepcompress_core::layer::Layer;
use deepcompress_core::model::{Model, Selector};
use deepcompress_core::pass::{Pass, PassContext, PassReport};

/// How [`PrepareQat`] quantizes weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WeightQat {
    /// [`FakeQuant`] with min-max scales under the scheme (the grid of round-to-nearest
    /// post-training quantization, kept during fine-tuning).
    FakeQuant(QuantScheme),
    /// [`LsqWeight`]: learned symmetric steps.
    Lsq {
        /// Bits per weight (2 to 8, or 16).
        bits: u8,
        /// One step per output channel instead of one per layer.
        per_channel: bool,
    },
}

/// How [`PrepareQat`] quantizes activations: each selected ReLU is replaced by a
/// quantizer that includes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ActQat {
    /// Float activations.
    None,
    /// [`LsqActivation`] (unsigned, step from the first batch).
    Lsq {
        /// Bits per activation.
        bits: u8,
    },
    /// [`Pact`] with a learned clipping level.
    Pact {
        /// Bits per activation.
        bits: u8,
        /// Initial clipping level.
        alpha: f32,
        /// L2 weight on the clipping level.
        l2: f32,
    },
}

/// Prepares a float model for quantization-aware training: attaches fake quantization to
/// the selected Linear and Conv2d weights (or wraps them in [`LsqWeight`]) and replaces
/// the selected ReLUs by activation quantizers ([`LsqActivation`], [`Pact`]). Train the
/// model with the core trainer afterwards, then run [`ConvertQat`].
///
/// Everything is checked and built before the model is touched: bad bits, NaN weights
/// (the error names the layer) or a selector matching no weight layer leave it unchanged.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{ActQat, PrepareQat, WeightQat};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// PrepareQat::new(Selector::all(), WeightQat::Lsq { bits: 4, per_channel: false })
///     .activations(ActQat::Pact { bits: 4, alpha: 10.0, l2: 1e-4 })
///     .apply(&mut model, &mut PassContext::new(0))?;
/// assert_eq!(model.layer("fc1")?.kind(), "LsqLinear");
/// assert_eq!(model.layer("relu1")?.kind(), "Pact");
/// assert!(model.state_dict().get_f32("fc1.weight_step").is_ok());
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareQat {
    selector: Selector,
    weights: WeightQat,
    activations: ActQat,
    act_selector: Selector,
}

enum Change {
    Constrain(String, FakeQuant),
    Replace(String, Box<dyn Layer>),
}

impl PrepareQat {
    /// Quantizes the weights of the selected Linear and Conv2d layers; activations stay
    /// float until [`PrepareQat::activations`].
    pub fn new(selector: Selector, weights: WeightQat) -> Self {
        Self {
            selector,
            weights,
            activations: ActQat::None,
            act_selector: Selector::kinds(&["ReLU"]),
        }
    }

    /// Quantizes activations: every ReLU (or those of [`PrepareQat::activation_selector`])
    /// is replaced by the quantizer.
    pub fn activations(mut self, a: ActQat) -> Self {
        self.activations = a;
        self
    }

    /// Which ReLUs to replace (default: all).
    pub fn activation_selector(mut self, s: Selector) -> Self {
        self.act_selector = s;
        self
    }

    fn prepare(&self, model: &Model) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        let selected = model.select(&self.selector)?;
        for p in &selected {
            let layer = model.layer(p)?;
            let Some(w) = weight_param(layer) else { continue };
            match self.weights {
                WeightQat::FakeQuant(scheme) => {
                    let fq = FakeQuant::new(scheme)?;
                    fq.quantize(w.value()).map_err(|e| at_layer(e, p))?;
                    out.push(Change::Constrain(p.clone(), fq));
                }
                WeightQat::Lsq { bits, per_channel } => {
                    let l = LsqWeight::new(layer.clone_box(), bits, per_channel)
                        .map_err(|e| at_layer(e, p))?;
                    out.push(Change::Replace(p.clone(), Box::new(l)));
                }
            }
        }
        if out.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                format!("matched no Linear or Conv2d layer (it matched {selected:?})"),
            ));
        }
        if self.activations != ActQat::None {
            let relus: Vec<String> = model
                .select(&self.act_selector)?
                .into_iter()
                .filter(|p| model.layer(p).is_ok_and(|l| l.kind() == "ReLU"))
                .collect();
            if relus.is_empty() {
                return Err(QuantError::param(
                    "activation selector",
                    format!("{:?}", self.act_selector.includes()),
                    "matched no ReLU to quantize",
                ));
            }
            for p in relus {
                let layer: Box<dyn Layer> = match self.activations {
                    ActQat::None => unreachable!("checked above"),
                    ActQat::Lsq { bits } => {
                        Box::new(LsqActivation::new(bits, false).map_err(|e| at_layer(e, &p))?)
                    }
                    ActQat::Pact { bits, alpha, l2 } => {
                        Box::new(Pact::new(alpha, Some(bits), l2).map_err(|e| at_layer(e, &p))?)
                    }
                };
                out.push(Change::Replace(p, layer));
            }
        }
        Ok(out)
    }
}

impl Pass for PrepareQat {
    fn name(&self) -> String {
        match self.weights {
            WeightQat::FakeQuant(s) => format!("prepare-qat (fake-quant {} bits)", s.bits),
            WeightQat::Lsq { bits, .. } => format!("prepare-qat (LSQ {bits} bits)"),
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
        let changes = self.prepare(model).map_err(|e| e.into_core(&name))?;
        let mut report = PassReport { pass: name, ..PassReport::default() };
        for c in changes {
            match c {
                Change::Constrain(p, fq) => {
                    let slot = model.layer_mut(&p)?;
                    let w = slot
                        .params_mut()
                        .into_iter()
                        .find(|(n, _)| *n == "weight")
                        .map(|(_, w)| w)
                        .expect("checked: a Linear or Conv2d");
                    w.set_constraint(Box::new(fq));
                    report.notes.push(format!("{p}: fake-quantized weight"));
                    report.layers.push(p);
                }
                Change::Replace(p, layer) => {
                    report.notes.push(format!("{p}: {}", layer.kind()));
                    model.replace(&p, layer)?;
                    report.layers.push(p);
                }
            }
        }
        Ok(report)
    }
}

/// Turns a model trained after [`PrepareQat`] into stored low-bit inference layers: each
/// selected [`LsqWeight`], and each Linear or Conv2d whose weight carries a [`FakeQuant`]
/// constraint, becomes a `CompressedLinear` / `CompressedConv2d` over a
/// [`QuantTensor`](crate::QuantTensor) holding exactly the codes the training simulated,
/// so the model's summary counts the real packed size. Activation quantizers stay in
/// place (they hold one float each). Errors (model unchanged): nothing to convert,
/// non-finite weights.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_quant::{ConvertQat, PrepareQat, WeightQat};
/// let mut model = deepcompress_core::models::lenet_300_100(0);
/// let x = ndarray::ArrayD::from_elem(vec![2, 784], 0.5f32);
/// PrepareQat::new(Selector::all(), WeightQat::Lsq { bits: 4, per_channel: true })
///     .apply(&mut model, &mut PassContext::new(0))?;
/// let simulated = model.predict(&x, 2)?;
/// ConvertQat::new(Selector::all()).apply(&mut model, &mut PassContext::new(0))?;
/// assert_eq!(model.layer("fc1")?.encoding(), "int4");
/// let stored = model.predict(&x, 2)?;
/// assert!((&simulated - &stored).iter().all(|d| d.abs() < 1e-4));
/// # Ok::<(), deepcompress_core::CoreError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertQat {
    selector: Selector,
}

impl ConvertQat {
    /// Converts the selected trained layers.
    pub fn new(selector: Selector) -> Self {
        Self { selector }
    }

    fn prepare(&self, model: &Model) -> Result<Vec<Converted>> {
        let mut out = Vec::new();
        for p in model.select(&self.selector)? {
            let layer = model.layer(&p)?;
            let (inner, tensor) = if let Some(l) = layer.as_any().downcast_ref::<LsqWeight>() {
                (l.inner(), l.quantized().map_err(|e| at_layer(e, &p))?)
            } else if let Some(fq) = weight_param(layer)
                .and_then(|w| w.constraint())
                .and_then(|c| c.as_any().downcast_ref::<FakeQuant>())
            {
                let w = weight_param(layer).expect("checked").value();
                (layer, fq.quantize(w).map_err(|e| at_layer(e, &p))?)
            } else {
                continue;
            };
            if let Some((l, bits)) = compressed(&p, inner, Box::new(tensor))? {
                out.push((p, l, bits));
            }
        }
        if out.is_empty() {
            return Err(QuantError::param(
                "selector",
                format!("{:?}", self.selector.includes()),
                "matched no layer prepared for quantization-aware training",
            ));
        }
        Ok(out)
    }
}

impl Pass for ConvertQat {
    fn name(&self) -> String {
        "convert-qat".into()
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
