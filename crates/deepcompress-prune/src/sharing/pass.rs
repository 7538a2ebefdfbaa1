//! The weight-sharing pass, and [`freeze`], which turns shared layers into inference
//! layers over [`SharedTensor`].

use super::kmeans::{Init, Method};
use super::{SharedTensor, SharedWeights};
use crate::error::check_finite;
use crate::{PruneError, Result};
use deepcompress_core::layer::{Conv2d, Layer, Linear};
use deepcompress_core::pass::{Pass, PassContext, PassReport};
use deepcompress_core::{Model, Param, Selector};
use ndarray::ArrayD;
use rayon::prelude::*;

/// Clusters the weights of the selected Linear and Conv2d layers and ties each weight to
/// its centroid with a [`SharedWeights`] constraint, ready for retraining (Han, Mao and
/// Dally, "Deep Compression", 2015, arXiv 1510.00149, sec. 3). Use it after pruning and
/// before [`freeze`].
///
/// - Bits per layer: 8 for Conv2d and 5 for Linear by default (the paper's AlexNet
///   setting), or set per kind or per path; a layer gets `2^bits` clusters.
/// - Pruning masks are kept: when a weight already has a constraint, the weights that are
///   exactly 0 and that the constraint forces to 0 are pruned — they stay 0 and join no
///   cluster — and one of the `2^bits` codes is reserved for that 0, so the layer has
///   `2^bits - 1` clusters. The new constraint replaces the old one (a parameter holds
///   one) and carries its mask. Without a constraint every weight is clustered.
/// - Validation (bits in 1..=16, only Linear or Conv2d selected, per-path bits naming
///   selected layers, finite weights) happens before the model is touched.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::sharing::{freeze, Method, WeightSharing};
/// let mut m = deepcompress_core::models::lenet_300_100(0);
/// let pass = WeightSharing::new(Selector::kinds(&["Linear"])).bits_for("fc3", 3).method(Method::Exact);
/// let report = pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
/// assert_eq!(report.layers, vec!["fc1", "fc2", "fc3"]);
/// freeze(&mut m, &Selector::all()).unwrap();
/// let s = m.summary(&[1, 784]).unwrap();
/// assert!(s.rows.iter().filter(|r| r.kind == "Linear").all(|r| r.encoding == "shared"));
/// // fc3: 100 x 10 weights, 3-bit indices, 8 centroids, 10 f32 biases.
/// let fc3 = s.rows.iter().find(|r| r.path == "fc3").unwrap();
/// assert_eq!(fc3.cost.storage_bits, 1000 * 3 + 8 * 32 + 10 * 32);
/// assert!(WeightSharing::new(Selector::all()).fc_bits(0).validate(&m).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct WeightSharing {
    selector: Selector,
    conv_bits: u32,
    fc_bits: u32,
    path_bits: Vec<(String, u32)>,
    method: Method,
}

/// One layer the pass will cluster, checked.
struct Target {
    path: String,
    bits: u32,
    keep: Option<Vec<bool>>,
}

impl WeightSharing {
    /// Shares the selected layers' weights: 8 bits for Conv2d, 5 for Linear, Lloyd from
    /// linear initialisation (the paper's choices).
    pub fn new(selector: Selector) -> Self {
        Self {
            selector,
            conv_bits: 8,
            fc_bits: 5,
            path_bits: Vec::new(),
            method: Method::Lloyd(Init::Linear),
        }
    }

    /// Bits per index for Conv2d layers.
    pub fn conv_bits(mut self, bits: u32) -> Self {
        self.conv_bits = bits;
        self
    }

    /// Bits per index for Linear layers.
    pub fn fc_bits(mut self, bits: u32) -> Self {
        self.fc_bits = bits;
        self
    }

    /// Bits per index for the layer at `path` (exact path, overrides the kind's default).
    pub fn bits_for(mut self, path: &str, bits: u32) -> Self {
        self.path_bits.retain(|(p, _)| p != path);
        self.path_bits.push((path.to_string(), bits));
        self
    }

    /// The clustering: Lloyd from an initialisation, or the exact DP.
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    fn bits_of(&self, path: &str, conv: bool) -> u32 {
        match self.path_bits.iter().find(|(p, _)| p == path) {
            Some((_, b)) => *b,
            None if conv => self.conv_bits,
            None => self.fc_bits,
        }
    }

    /// Checks everything and lists the layers to cluster, without changing the model.
    fn targets(&self, model: &Model) -> Result<Vec<Target>> {
        let named = [("conv_bits", self.conv_bits), ("fc_bits", self.fc_bits)];
        let per_path = self.path_bits.iter().map(|(p, b)| (p.as_str(), *b));
        for (name, bits) in named.into_iter().chain(per_path) {
            if !(1..=16).contains(&bits) {
                return Err(PruneError::param(
                    format!("bits for {name}"),
                    bits,
                    "weight sharing takes 1 to 16 bits (2 to 65,536 centroids)",
                ));
            }
        }
        let paths = model.select(&self.selector)?;
        if let Some((p, _)) = self.path_bits.iter().find(|(p, _)| !paths.contains(p)) {
            return Err(PruneError::param(
                "bits_for path",
                p,
                format!("is not among the selected layers {paths:?}"),
            ));
        }
        let mut targets = Vec::new();
        for path in paths {
            let layer = model.layer(&path)?;
            let (w, conv) = weight_of(layer).ok_or_else(|| PruneError::Unsupported {
                path: path.clone(),
                kind: layer.kind().to_string(),
                reason: "weight sharing handles Linear and Conv2d layers".into(),
            })?;
            let values = w.value().as_slice_memory_order().expect("parameters are contiguous");
            check_finite(values, &format!("{path}.weight"))?;
            targets.push(Target { bits: self.bits_of(&path, conv), keep: kept(w), path });
        }
        if targets.is_empty() {
            return Err(PruneError::NothingSelected {
                what: "Linear or Conv2d".into(),
                hint: format!(" (selector {:?})", self.selector),
            });
        }
        Ok(targets)
    }

    fn apply_inner(&self, model: &mut Model, ctx: &mut PassContext<'_>) -> Result<PassReport> {
        let targets = self.targets(model)?;
        ctx.report_progress(&format!("weight-sharing: clustering {} layers", targets.len()));
        let shared: &Model = model;
        let fitted = targets
            .par_iter()
            .map(|t| {
                let (w, _) = weight_of(shared.layer(&t.path)?).expect("checked in targets");
                let pruned = t.keep.as_ref().is_some_and(|k| k.iter().any(|k| !k));
                // With pruned weights one code is kept for their exact 0.
                let k = (1usize << t.bits) - usize::from(pruned);
                SharedWeights::fit(w.value(), t.keep.as_deref(), k, self.method)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut notes = Vec::new();
        for (t, (c, sse)) in targets.iter().zip(fitted) {
            notes.push(format!(
                "{}: {} bits, {} centroids, {} of {} weights clustered, SSE {:.6e}",
                t.path,
                t.bits,
                c.codebook().len(),
                c.labels().len() - c.pruned(),
                c.labels().len(),
                sse
            ));
            let layer = model.layer_mut(&t.path)?;
            weight_of_mut(layer.as_mut()).expect("checked in targets").set_constraint(Box::new(c));
        }
        Ok(PassReport {
            pass: self.name(),
            layers: targets.into_iter().map(|t| t.path).collect(),
            notes,
        })
    }
}

impl Pass for WeightSharing {
    fn name(&self) -> String {
        "weight-sharing".to_string()
    }

    fn validate(&self, model: &Model) -> deepcompress_core::Result<()> {
        self.targets(model).map(|_| ()).map_err(|e| e.into_core(&self.name()))
    }

    fn apply(
        &self,
        model: &mut Model,
        ctx: &mut PassContext<'_>,
    ) -> deepcompress_core::Result<PassReport> {
        // Every check runs in `targets` and every clustering before the first change.
        self.apply_inner(model, ctx).map_err(|e| e.into_core(&self.name()))
    }
}

/// The weight of a Linear or Conv2d layer, and whether it is a convolution.
fn weight_of(layer: &dyn Layer) -> Option<(&Param, bool)> {
    let any = layer.as_any();
    if let Some(fc) = any.downcast_ref::<Linear>() {
        Some((&fc.weight, false))
    } else {
        any.downcast_ref::<Conv2d>().map(|c| (&c.weight, true))
    }
}

fn weight_of_mut(layer: &mut dyn Layer) -> Option<&mut Param> {
    let any = layer.as_any_mut();
    if any.is::<Linear>() {
        any.downcast_mut::<Linear>().map(|fc| &mut fc.weight)
    } else {
        any.downcast_mut::<Conv2d>().map(|c| &mut c.weight)
    }
}

/// Which weights an existing constraint leaves free: a weight is pruned when it is
/// exactly 0 and the constraint maps a probe of ones to 0 at its position (any mask
/// does). `None` when there is no constraint.
fn kept(p: &Param) -> Option<Vec<bool>> {
    let mut c = p.constraint()?.clone_box();
    let mut probe = ArrayD::ones(p.value().raw_dim());
    c.project(&mut probe);
    Some(p.value().iter().zip(&probe).map(|(v, q)| !(*v == 0.0 && *q == 0.0)).collect())
}

fn shared_of(p: &Param) -> Option<&SharedWeights> {
    p.constraint()?.as_any().downcast_ref::<SharedWeights>()
}

/// Replaces every selected Linear (Conv2d) whose weight carries a [`SharedWeights`]
/// constraint by a [`CompressedLinear`](deepcompress_core::layer::CompressedLinear) ([`CompressedConv2d`](deepcompress_core::layer::CompressedConv2d)) over a [`SharedTensor`]:
/// the inference form of Deep Compression's weight sharing (Han et al. 2015, arXiv
/// 1510.00149, sec. 3). Selected layers without the constraint are left alone. Returns
/// the paths replaced; on error (nothing shared selected, a grouped convolution) the
/// model is unchanged.
///
/// ```
/// use deepcompress_core::model::Selector;
/// use deepcompress_core::pass::{Pass, PassContext};
/// use deepcompress_prune::sharing::{freeze, WeightSharing};
/// let mut m = deepcompress_core::models::lenet5(0);
/// assert!(freeze(&mut m, &Selector::all()).is_err()); // nothing is shared yet
/// WeightSharing::new(Selector::path("conv1")).apply(&mut m, &mut PassContext::new(0)).unwrap();
/// assert_eq!(freeze(&mut m, &Selector::all()).unwrap(), vec!["conv1"]);
/// ```
pub fn freeze(model: &mut Model, selector: &Selector) -> Result<Vec<String>> {
    let mut plan: Vec<(String, Box<dyn Layer>)> = Vec::new();
    for path in model.select(selector)? {
        let Ok(w) = crate::targets::weight(model, &path) else { continue };
        let Some(c) = shared_of(w) else { continue };
        if let Ok(conv) = model.layer_as::<Conv2d>(&path)
            && conv.config.groups != 1
        {
            return Err(PruneError::Unsupported {
                path,
                kind: "Conv2d".into(),
                reason: format!(
                    "groups = {}: a frozen shared convolution must be ungrouped",
                    conv.config.groups
                ),
            });
        }
        let t: SharedTensor = c.to_tensor(w.value().shape())?;
        let frozen = crate::targets::compressed_layer(model, &path, Box::new(t))?;
        plan.push((path, frozen));
    }
    if plan.is_empty() {
        return Err(PruneError::NothingSelected {
            what: "weight-shared Linear or Conv2d".into(),
            hint: " (run WeightSharing first)".into(),
        });
    }
    let mut done = Vec::new();
    for (path, layer) in plan {
        model.replace(&path, layer)?;
        done.push(path);
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepcompress_core::models::lenet_300_100;
    use deepcompress_core::param::Constraint;
    use std::any::Any;

    /// A stand-in for a pruning mask: zeroes the first half of the weights.
    #[derive(Debug, Clone)]
    struct HalfMask;
    impl Constraint for HalfMask {
        fn name(&self) -> &'static str {
            "half-mask"
        }
        fn project(&mut self, v: &mut ArrayD<f32>) {
            let n = v.len() / 2;
            v.iter_mut().take(n).for_each(|x| *x = 0.0);
        }
        fn clone_box(&self) -> Box<dyn Constraint> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
    }

    fn fc(m: &Model, p: &str) -> Linear {
        m.layer_as::<Linear>(p).unwrap().clone()
    }

    #[test]
    fn masked_weights_stay_zero_and_reserve_a_code() {
        let mut m = lenet_300_100(1);
        m.layer_mut("fc2")
            .unwrap()
            .as_any_mut()
            .downcast_mut::<Linear>()
            .unwrap()
            .weight
            .set_constraint(Box::new(HalfMask));
        let pass = WeightSharing::new(Selector::path("fc2")).fc_bits(3);
        let r = pass.apply(&mut m, &mut PassContext::new(0)).unwrap();
        assert!(r.notes[0].contains("7 centroids"), "{:?}", r.notes);
        let w = fc(&m, "fc2").weight.value().clone();
        let n = w.len();
        assert!(w.iter().take(n / 2).all(|v| *v == 0.0));
        assert!(w.iter().skip(n / 2).all(|v| *v != 0.0));
        freeze(&mut m, &Selector::all()).unwrap();
        let l = m.layer_as::<deepcompress_core::layer::CompressedLinear>("fc2").unwrap();
        let t = l.weight().as_any().downcast_ref::<SharedTensor>().unwrap();
        assert_eq!((t.codebook().len(), t.bits()), (8, 3));
        assert_eq!(l.weight().to_dense(), w);
    }

    #[test]
    fn frozen_model_predicts_like_the_shared_one() {
        let mut m = lenet_300_100(2);
        WeightSharing::new(Selector::all()).apply(&mut m, &mut PassContext::new(0)).unwrap();
        let x = ArrayD::from_shape_fn(vec![3, 784], |ix| ((ix[1] * 31 + ix[0]) % 17) as f32 / 17.0);
        let before = m.predict(&x, 3).unwrap();
        freeze(&mut m, &Selector::all()).unwrap();
        let after = m.predict(&x, 3).unwrap();
        assert!(before.iter().zip(&after).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn bad_requests_leave_the_model_unchanged() {
        let mut m = lenet_300_100(3);
        let before = fc(&m, "fc1").weight.value().clone();
        let ctx = &mut PassContext::new(0);
        for pass in [
            WeightSharing::new(Selector::all()).fc_bits(17),
            WeightSharing::new(Selector::all()).bits_for("fc9", 4),
            WeightSharing::new(Selector::kinds(&["ReLU", "Relu"])),
        ] {
            assert!(pass.validate(&m).is_err(), "{pass:?}");
            assert!(pass.apply(&mut m, ctx).is_err());
        }
        m.layer_mut("fc3")
            .unwrap()
            .as_any_mut()
            .downcast_mut::<Linear>()
            .unwrap()
            .weight
            .value_mut()[[0, 0]] = f32::NAN;
        let err = WeightSharing::new(Selector::all()).apply(&mut m, ctx).unwrap_err();
        assert!(err.to_string().contains("fc3"), "{err}");
        assert_eq!(fc(&m, "fc1").weight.value(), &before);
        assert!(fc(&m, "fc1").weight.constraint().is_none());
    }
}
