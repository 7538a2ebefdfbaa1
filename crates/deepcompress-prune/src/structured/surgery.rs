//! Physical removal of channels: layers are rebuilt with fewer filters / inputs, so the
//! pruned model is genuinely smaller and faster (no masks).

use super::groups::{ChannelGroups, Role};
use crate::error::{PruneError, Result};
use deepcompress_core::layer::{BatchNorm, Conv2d, Conv2dConfig, Layer, Linear};
use deepcompress_core::model::Model;
use deepcompress_core::param::Param;
use ndarray::{Array1, Array2, Array4, ArrayD, Axis, Ix1, Ix2, Ix4};

/// Checks that `keep` is a non-empty strictly increasing list of indices below `n`.
fn check_keep(path: &str, what: &str, keep: &[usize], n: usize) -> Result<()> {
    if keep.is_empty() {
        return Err(PruneError::param(
            format!("{path} kept {what}"),
            "[]",
            "at least one channel must remain",
        ));
    }
    if let Some(w) = keep.windows(2).find(|w| w[0] >= w[1]) {
        return Err(PruneError::param(
            format!("{path} kept {what}"),
            format!("{} then {}", w[0], w[1]),
            "indices must be strictly increasing",
        ));
    }
    if let Some(&bad) = keep.iter().find(|&&k| k >= n) {
        return Err(PruneError::param(
            format!("{path} kept {what}"),
            bad,
            format!("out of range for {n} channels"),
        ));
    }
    Ok(())
}

/// A new parameter holding `value`, trainable as `old` was. Constraints (masks,
/// codebooks) are shaped for the old tensor and are dropped.
fn param_like(old: &Param, value: ArrayD<f32>) -> Param {
    let mut p = Param::new(value);
    p.trainable = old.trainable;
    p
}

fn weight4(conv: &Conv2d) -> Array4<f32> {
    conv.weight.value().clone().into_dimensionality::<Ix4>().expect("Conv2d weight is 4-D")
}

fn bias1(b: &Option<Param>) -> Option<Array1<f32>> {
    b.as_ref().map(|b| b.value().clone().into_dimensionality::<Ix1>().expect("bias is 1-D"))
}

fn rebuild_conv(
    old: &Conv2d,
    config: Conv2dConfig,
    w: Array4<f32>,
    b: Option<Array1<f32>>,
) -> Result<Conv2d> {
    // `select` along an inner axis yields strided arrays; kernels want standard layout.
    let w = w.as_standard_layout().into_owned();
    let mut conv = Conv2d::from_weights(config, w, b)?;
    conv.weight = param_like(&old.weight, conv.weight.value().clone());
    if let (Some(nb), Some(ob)) = (&mut conv.bias, &old.bias) {
        *nb = param_like(ob, nb.value().clone());
    }
    Ok(conv)
}

/// Keeps only the filters `keep` (sorted, distinct) of an ungrouped Conv2d: the output
/// channels of structured filter pruning (Li et al. 2017, arXiv 1608.08710). Every kept
/// output channel is computed exactly as before.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_prune::structured::conv_keep_outputs;
/// let conv = Conv2d::new(Conv2dConfig::new(3, 8, 3), 0).unwrap();
/// let small = conv_keep_outputs(&conv, &[0, 5], "conv").unwrap();
/// assert_eq!(small.config.out_channels, 2);
/// assert!(conv_keep_outputs(&conv, &[9], "conv").is_err());
/// ```
pub fn conv_keep_outputs(conv: &Conv2d, keep: &[usize], path: &str) -> Result<Conv2d> {
    let c = conv.config;
    if c.groups != 1 {
        return Err(grouped(path, c));
    }
    check_keep(path, "output channels", keep, c.out_channels)?;
    let w = weight4(conv).select(Axis(0), keep);
    let b = bias1(&conv.bias).map(|b| b.select(Axis(0), keep));
    rebuild_conv(conv, Conv2dConfig { out_channels: keep.len(), ..c }, w, b)
}

/// Keeps only the input channels `keep` of an ungrouped Conv2d (the layer after a pruned
/// one, Li et al. 2017, arXiv 1608.08710).
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_prune::structured::conv_keep_inputs;
/// let conv = Conv2d::new(Conv2dConfig::new(3, 8, 3), 0).unwrap();
/// assert_eq!(conv_keep_inputs(&conv, &[1, 2], "conv").unwrap().config.in_channels, 2);
/// ```
pub fn conv_keep_inputs(conv: &Conv2d, keep: &[usize], path: &str) -> Result<Conv2d> {
    let c = conv.config;
    if c.groups != 1 {
        return Err(grouped(path, c));
    }
    check_keep(path, "input channels", keep, c.in_channels)?;
    let w = weight4(conv).select(Axis(1), keep);
    rebuild_conv(conv, Conv2dConfig { in_channels: keep.len(), ..c }, w, bias1(&conv.bias))
}

/// Keeps the channels `keep` of a depthwise Conv2d (groups = in = out, as in MobileNet,
/// Howard et al. 2017, arXiv 1704.04861), which filters each channel on its own.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig};
/// use deepcompress_prune::structured::depthwise_keep;
/// let dw = Conv2d::new(Conv2dConfig::new(4, 4, 3).groups(4), 0).unwrap();
/// let c = depthwise_keep(&dw, &[0, 3], "dw").unwrap().config;
/// assert_eq!((c.in_channels, c.out_channels, c.groups), (2, 2, 2));
/// ```
pub fn depthwise_keep(conv: &Conv2d, keep: &[usize], path: &str) -> Result<Conv2d> {
    let c = conv.config;
    if !(c.groups == c.in_channels && c.out_channels == c.in_channels) {
        return Err(PruneError::Unsupported {
            path: path.to_string(),
            kind: "Conv2d".into(),
            reason: format!(
                "not depthwise: {} groups, {} -> {} channels",
                c.groups, c.in_channels, c.out_channels
            ),
        });
    }
    check_keep(path, "channels", keep, c.in_channels)?;
    let w = weight4(conv).select(Axis(0), keep);
    let b = bias1(&conv.bias).map(|b| b.select(Axis(0), keep));
    let k = keep.len();
    rebuild_conv(conv, Conv2dConfig { in_channels: k, out_channels: k, groups: k, ..c }, w, b)
}

fn grouped(path: &str, c: Conv2dConfig) -> PruneError {
    PruneError::Unsupported {
        path: path.to_string(),
        kind: "Conv2d".into(),
        reason: format!(
            "grouped convolution ({} groups, {} -> {} channels) cannot lose single channels",
            c.groups, c.in_channels, c.out_channels
        ),
    }
}

fn rebuild_linear(old: &Linear, w: Array2<f32>, b: Option<Array1<f32>>) -> Result<Linear> {
    let w = w.as_standard_layout().into_owned();
    let mut fc = Linear::from_weights(w, b)?;
    fc.weight = param_like(&old.weight, fc.weight.value().clone());
    if let (Some(nb), Some(ob)) = (&mut fc.bias, &old.bias) {
        *nb = param_like(ob, nb.value().clone());
    }
    Ok(fc)
}

/// Keeps only the neurons `keep` of a Linear layer (its output features; Li et al. 2017,
/// arXiv 1608.08710 apply the same to fully connected layers).
///
/// ```
/// use deepcompress_core::layer::Linear;
/// use deepcompress_prune::structured::linear_keep_outputs;
/// let fc = Linear::new(4, 6, true, 0);
/// assert_eq!(linear_keep_outputs(&fc, &[0, 2, 4], "fc").unwrap().out_features(), 3);
/// ```
pub fn linear_keep_outputs(fc: &Linear, keep: &[usize], path: &str) -> Result<Linear> {
    check_keep(path, "output features", keep, fc.out_features())?;
    let w = fc.weight.value().clone().into_dimensionality::<Ix2>().expect("2-D weight");
    rebuild_linear(fc, w.select(Axis(0), keep), bias1(&fc.bias).map(|b| b.select(Axis(0), keep)))
}

/// Keeps the input channels `keep` of a Linear layer whose input is `factor` features per
/// channel (a flattened `[c, h, w]` map has `factor = h * w`; channel `k` is features
/// `k*factor .. (k+1)*factor`).
///
/// ```
/// use deepcompress_core::layer::Linear;
/// use deepcompress_prune::structured::linear_keep_inputs;
/// let fc = Linear::new(50 * 16, 500, true, 0); // LeNet-5 fc1 after 50 maps of 4x4
/// assert_eq!(linear_keep_inputs(&fc, &[0, 7], 16, "fc1").unwrap().in_features(), 32);
/// assert!(linear_keep_inputs(&fc, &[0], 3, "fc1").is_err()); // 800 is not a multiple of 3
/// ```
pub fn linear_keep_inputs(
    fc: &Linear,
    keep: &[usize],
    factor: usize,
    path: &str,
) -> Result<Linear> {
    if factor == 0 || !fc.in_features().is_multiple_of(factor) {
        return Err(PruneError::param(
            format!("{path} features per channel"),
            factor,
            format!("must divide the {} input features", fc.in_features()),
        ));
    }
    check_keep(path, "input channels", keep, fc.in_features() / factor)?;
    let cols: Vec<usize> = keep.iter().flat_map(|&k| k * factor..(k + 1) * factor).collect();
    let w = fc.weight.value().clone().into_dimensionality::<Ix2>().expect("2-D weight");
    rebuild_linear(fc, w.select(Axis(1), &cols), bias1(&fc.bias))
}

/// Removes channels from a model: for every group `g` with `keep[g] = Some(indices)`,
/// every member of the group keeps exactly those channels — producers lose filters or
/// neurons, BatchNorms and depthwise convolutions lose channels, consumers lose inputs
/// (Li et al. 2017, arXiv 1608.08710; residual coupling as in DepGraph, Fang et al. 2023,
/// arXiv 2301.12900). Returns the paths changed. Everything is checked on a copy first:
/// on error the model is unchanged. Parameter constraints (masks) of changed layers are
/// dropped, since they no longer fit.
///
/// ```
/// use deepcompress_prune::structured::{ChannelGroups, remove_channels};
/// let mut m = deepcompress_core::models::resnet_small(0);
/// let groups = ChannelGroups::analyze(&m, &[1, 1, 28, 28]).unwrap();
/// let g = groups.index_of("layer3.block.body.conv2").unwrap();
/// let mut keep = vec![None; groups.groups().len()];
/// keep[g] = Some((0..32).collect::<Vec<usize>>());
/// let changed = remove_channels(&mut m, &groups, &keep).unwrap();
/// assert!(changed.contains(&"layer3.block.shortcut.conv".to_string()));
/// assert!(changed.contains(&"fc".to_string()));
/// assert_eq!(m.summary(&[1, 1, 28, 28]).unwrap().output, vec![1, 10]);
/// ```
pub fn remove_channels(
    model: &mut Model,
    groups: &ChannelGroups,
    keep: &[Option<Vec<usize>>],
) -> Result<Vec<String>> {
    if keep.len() != groups.groups().len() {
        return Err(PruneError::param(
            "keep lists",
            keep.len(),
            format!("need one entry per channel group ({})", groups.groups().len()),
        ));
    }
    let mut work = model.clone();
    let mut changed: Vec<String> = Vec::new();
    for (g, k) in groups.groups().iter().zip(keep) {
        let Some(k) = k else { continue };
        if k.len() == g.channels && k.iter().enumerate().all(|(i, &c)| i == c) {
            continue;
        }
        if let Some(b) = g.blocked.first() {
            let path = g.members.first().map_or_else(String::new, |m| m.path.clone());
            return Err(PruneError::Unsupported {
                path,
                kind: g.members.first().map_or_else(String::new, |m| m.kind.clone()),
                reason: format!("its channels cannot be removed: they are {b}"),
            });
        }
        check_keep("channel group", "channels", k, g.channels)?;
        for m in &g.members {
            edit(&mut work, &m.path, m.role, k)?;
            if !changed.contains(&m.path) {
                changed.push(m.path.clone());
            }
        }
    }
    // The rebuilt model must still run on the analysed input.
    work.summary(groups.input_shape())?;
    *model = work;
    Ok(changed)
}

/// Applies one member's edit in place.
fn edit(model: &mut Model, path: &str, role: Role, keep: &[usize]) -> Result<()> {
    let slot = model.layer_mut(path)?;
    let kind = slot.kind().to_string();
    let any = slot.as_any();
    let new: Box<dyn Layer> = if let Some(conv) = any.downcast_ref::<Conv2d>() {
        Box::new(match role {
            Role::Producer => conv_keep_outputs(conv, keep, path)?,
            Role::PerChannel => depthwise_keep(conv, keep, path)?,
            Role::Consumer { .. } => conv_keep_inputs(conv, keep, path)?,
        })
    } else if let Some(fc) = any.downcast_ref::<Linear>() {
        Box::new(match role {
            Role::Producer => linear_keep_outputs(fc, keep, path)?,
            Role::Consumer { factor } => linear_keep_inputs(fc, keep, factor, path)?,
            Role::PerChannel => return Err(role_error(path, &kind, role)),
        })
    } else if let Some(bn) = any.downcast_ref::<BatchNorm>() {
        if role != Role::PerChannel {
            return Err(role_error(path, &kind, role));
        }
        let mut bn = bn.clone();
        bn.retain_channels(keep)?;
        Box::new(bn)
    } else {
        return Err(role_error(path, &kind, role));
    };
    *slot = new;
    Ok(())
}

fn role_error(path: &str, kind: &str, role: Role) -> PruneError {
    PruneError::Unsupported {
        path: path.to_string(),
        kind: kind.to_string(),
        reason: format!(
            "cannot remove channels as {role:?} (the model changed since the analysis?)"
        ),
    }
}
