//! Channel dependency analysis: which layers must lose the same channel indices.
//!
//! Removing output channel `k` of a convolution also removes input channel `k` of every
//! layer that reads it, channel `k` of the BatchNorm in between, and — through a residual
//! add — channel `k` of every other tensor added to it (the block's shortcut, or for an
//! identity shortcut the layer that produced the block's input). The walk below follows
//! the model tree with the tensor shapes and merges such coupled channel spaces with a
//! union-find, in the spirit of DepGraph (Fang et al. 2023, arXiv 2301.12900).

use crate::error::{PruneError, Result};
use deepcompress_core::layer::{
    AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Layer, Linear, LogSoftmax,
    MaxPool2d, Relu, Residual, Sequential, Sigmoid, Softmax, Tanh,
};
use deepcompress_core::model::Model;
use serde::Serialize;

/// What a layer does with the channels of a [`ChannelGroup`].
///
/// ```
/// use deepcompress_prune::structured::{ChannelGroups, Role};
/// let g = ChannelGroups::analyze(&deepcompress_core::models::lenet5(0), &[1, 1, 28, 28]).unwrap();
/// let conv2 = g.group_of("conv2").unwrap();
/// // conv2's 50 channels reach fc1 through pool2 and flatten: 4 x 4 inputs per channel.
/// assert!(conv2.members.iter().any(|m| m.path == "fc1" && m.role == Role::Consumer { factor: 16 }));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Role {
    /// Writes the channels: the filters of a Conv2d, the neurons of a Linear.
    Producer,
    /// Transforms each channel on its own: BatchNorm, depthwise Conv2d.
    PerChannel,
    /// Reads the channels as input; each channel is `factor` consecutive input features
    /// (`h * w` for a Linear after Flatten, 1 otherwise).
    Consumer {
        /// Input features per channel.
        factor: usize,
    },
}

/// One layer's part in a [`ChannelGroup`].
///
/// ```
/// use deepcompress_prune::structured::{ChannelGroups, Role};
/// let g = ChannelGroups::analyze(&deepcompress_core::models::lenet5(0), &[1, 1, 28, 28]).unwrap();
/// let m = &g.group_of("conv1").unwrap().members[0];
/// assert_eq!((m.path.as_str(), m.kind.as_str(), m.role), ("conv1", "Conv2d", Role::Producer));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Layer path.
    pub path: String,
    /// Layer kind (`Conv2d`, `BatchNorm2d`, `Linear`, ...).
    pub kind: String,
    /// What the layer does with the group's channels.
    pub role: Role,
}

/// Why a group's channels cannot be removed.
///
/// ```
/// use deepcompress_prune::structured::{Blocked, ChannelGroups};
/// let g = ChannelGroups::analyze(&deepcompress_core::models::lenet5(0), &[1, 1, 28, 28]).unwrap();
/// assert_eq!(g.group_of("fc2").unwrap().blocked, vec![Blocked::ModelOutput]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Blocked {
    /// The channels are the model's input.
    ModelInput,
    /// The channels are the model's output (class scores).
    ModelOutput,
    /// A layer mixes the channels (softmax): removing one changes the others.
    ChannelMixing {
        /// Layer path.
        path: String,
        /// Layer kind.
        kind: String,
    },
    /// A layer this analysis cannot see through (grouped convolution, compressed or
    /// unknown layer).
    Unsupported {
        /// Layer path.
        path: String,
        /// Layer kind.
        kind: String,
        /// Why.
        reason: String,
    },
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Blocked::ModelInput => write!(f, "the model input"),
            Blocked::ModelOutput => write!(f, "the model output"),
            Blocked::ChannelMixing { path, kind } => {
                write!(f, "mixed across channels by `{path}` ({kind})")
            }
            Blocked::Unsupported { path, kind, reason } => {
                write!(f, "read by `{path}` ({kind}), which cannot be pruned: {reason}")
            }
        }
    }
}

/// A set of channels that must be pruned together: the same indices leave every member.
///
/// ```
/// use deepcompress_prune::structured::ChannelGroups;
/// let g = ChannelGroups::analyze(&deepcompress_core::models::resnet_small(0), &[1, 1, 28, 28]).unwrap();
/// // The stem's output is added to layer1's residual body output: one group of 16.
/// let stem = g.group_of("conv1").unwrap();
/// assert_eq!(stem.channels, 16);
/// assert!(stem.producers().any(|p| p == "layer1.block.body.conv2"));
/// assert!(stem.is_prunable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelGroup {
    /// Number of channels.
    pub channels: usize,
    /// Layers coupled through these channels, in the order the analysis met them.
    pub members: Vec<Member>,
    /// Reasons the channels cannot be removed; empty when they can.
    pub blocked: Vec<Blocked>,
}

impl ChannelGroup {
    /// True when nothing blocks the removal of these channels.
    pub fn is_prunable(&self) -> bool {
        self.blocked.is_empty()
    }

    /// Paths of the layers that write these channels.
    pub fn producers(&self) -> impl Iterator<Item = &str> {
        self.members.iter().filter(|m| m.role == Role::Producer).map(|m| m.path.as_str())
    }
}

/// `coef * Π widths[groups]`: the MACs of one layer as a function of the group widths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct CostTerm {
    pub(crate) coef: u64,
    pub(crate) groups: Vec<usize>,
}

/// The channel groups of a model for one input shape, with a MAC model that says how
/// the model's multiply-accumulates change when groups lose channels.
///
/// Walks `Sequential` and `Residual` containers; understands Conv2d (ungrouped and
/// depthwise), Linear, BatchNorm, Flatten, GlobalAvgPool, pooling, dropout and
/// element-wise activations. Other layers block the channels they touch (see
/// [`Blocked`]); pruning a blocked group is refused with [`PruneError::Unsupported`].
///
/// ```
/// use deepcompress_prune::structured::ChannelGroups;
/// let m = deepcompress_core::models::resnet_small(0);
/// let g = ChannelGroups::analyze(&m, &[1, 1, 28, 28]).unwrap();
/// // Stem+layer1, layer1's inner conv, layer2 inner and output, layer3 inner and output
/// // are prunable; the input image and the logits are not.
/// assert_eq!(g.groups().iter().filter(|c| c.is_prunable()).count(), 6);
/// assert_eq!(g.macs(&g.widths()), m.summary(&[1, 1, 28, 28]).unwrap().total().macs);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelGroups {
    groups: Vec<ChannelGroup>,
    terms: Vec<CostTerm>,
    input_shape: Vec<usize>,
}

impl ChannelGroups {
    /// Analyses `model` for an input of shape `input` (batch first, e.g. `[1, 1, 28, 28]`).
    /// Errors when the shapes do not flow through the model.
    pub fn analyze(model: &Model, input: &[usize]) -> Result<Self> {
        if input.len() < 2 || input.contains(&0) {
            return Err(PruneError::param(
                "input shape",
                format!("{input:?}"),
                "needs a batch and a channel axis, all sizes positive",
            ));
        }
        let mut w = Walker::default();
        let start = w.new_space(input[1], None);
        w.block(start, Blocked::ModelInput);
        let out =
            w.walk(model.root(), "", Flow { space: start, factor: 1, shape: input.to_vec() })?;
        w.block(out.space, Blocked::ModelOutput);
        Ok(w.finish(input))
    }

    /// The groups, in the order their first producer appears in the model.
    pub fn groups(&self) -> &[ChannelGroup] {
        &self.groups
    }

    /// The input shape the analysis used.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Index of the group whose channels the layer at `path` produces.
    pub fn index_of(&self, path: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.members.iter().any(|m| m.role == Role::Producer && m.path == path))
    }

    /// The group whose channels the layer at `path` produces.
    pub fn group_of(&self, path: &str) -> Option<&ChannelGroup> {
        self.index_of(path).map(|i| &self.groups[i])
    }

    /// Current number of channels of each group.
    pub fn widths(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.channels).collect()
    }

    /// Multiply-accumulates of the whole model (same count as the core summary) if the
    /// groups had the given widths.
    pub fn macs(&self, widths: &[usize]) -> u64 {
        self.terms.iter().map(|t| term_macs(t, widths)).sum()
    }

    /// Indices of the cost terms that involve each group (for the greedy MAC target).
    pub(crate) fn terms_by_group(&self) -> Vec<Vec<usize>> {
        let mut by = vec![Vec::new(); self.groups.len()];
        for (i, t) in self.terms.iter().enumerate() {
            for &g in &t.groups {
                if !by[g].contains(&i) {
                    by[g].push(i);
                }
            }
        }
        by
    }

    pub(crate) fn terms(&self) -> &[CostTerm] {
        &self.terms
    }
}

pub(crate) fn term_macs(t: &CostTerm, widths: &[usize]) -> u64 {
    t.groups.iter().fold(t.coef, |acc, &g| acc * widths[g] as u64)
}

/// The tensor between two layers: which channel space it carries, how many features
/// each channel spans (after Flatten) and its shape.
#[derive(Debug, Clone)]
struct Flow {
    space: usize,
    factor: usize,
    shape: Vec<usize>,
}

#[derive(Debug, Default)]
struct Space {
    width: usize,
    parent: usize,
    /// Creation order of the first producer, so that groups list in model order.
    order: usize,
    members: Vec<Member>,
    blocked: Vec<Blocked>,
}

#[derive(Debug, Default)]
struct Walker {
    spaces: Vec<Space>,
    terms: Vec<CostTerm>,
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") }
}

fn is<T: 'static>(l: &dyn Layer) -> bool {
    l.as_any().is::<T>()
}

impl Walker {
    fn new_space(&mut self, width: usize, producer: Option<Member>) -> usize {
        let id = self.spaces.len();
        self.spaces.push(Space {
            width,
            parent: id,
            order: id,
            members: producer.into_iter().collect(),
            blocked: Vec::new(),
        });
        id
    }

    fn find(&mut self, mut s: usize) -> usize {
        while self.spaces[s].parent != s {
            let p = self.spaces[s].parent;
            self.spaces[s].parent = self.spaces[p].parent;
            s = p;
        }
        s
    }

    fn union(&mut self, a: usize, b: usize) -> usize {
        let (a, b) = (self.find(a), self.find(b));
        if a == b {
            return a;
        }
        let (keep, gone) =
            if self.spaces[a].order <= self.spaces[b].order { (a, b) } else { (b, a) };
        let members = std::mem::take(&mut self.spaces[gone].members);
        let blocked = std::mem::take(&mut self.spaces[gone].blocked);
        self.spaces[gone].parent = keep;
        self.spaces[keep].members.extend(members);
        for r in blocked {
            self.block(keep, r);
        }
        keep
    }

    fn add_member(&mut self, space: usize, path: &str, layer: &dyn Layer, role: Role) {
        let r = self.find(space);
        self.spaces[r].members.push(Member {
            path: path.to_string(),
            kind: layer.kind().to_string(),
            role,
        });
    }

    fn block(&mut self, space: usize, why: Blocked) {
        let r = self.find(space);
        if !self.spaces[r].blocked.contains(&why) {
            self.spaces[r].blocked.push(why);
        }
    }

    fn term(&mut self, coef: u64, spaces: &[usize]) {
        let groups = spaces.iter().map(|&s| self.find(s)).collect();
        self.terms.push(CostTerm { coef, groups });
    }

    /// A layer the analysis cannot see through: it blocks its input channels, and its
    /// output is a new blocked space; its MACs stay constant.
    fn opaque(&mut self, layer: &dyn Layer, path: &str, x: &Flow, why: Blocked) -> Result<Flow> {
        let mut rows = Vec::new();
        let shape = layer.summarize(path, &x.shape, &mut rows).map_err(|e| e.at(path))?;
        self.term(rows.iter().map(|r| r.cost.macs).sum(), &[]);
        self.block(x.space, why.clone());
        let out = self.new_space(shape.get(1).copied().unwrap_or(1), None);
        self.block(out, why);
        Ok(Flow { space: out, factor: 1, shape })
    }

    fn unsupported(
        &mut self,
        layer: &dyn Layer,
        path: &str,
        x: &Flow,
        reason: &str,
    ) -> Result<Flow> {
        let why = Blocked::Unsupported {
            path: path.to_string(),
            kind: layer.kind().to_string(),
            reason: reason.to_string(),
        };
        self.opaque(layer, path, x, why)
    }

    fn walk(&mut self, layer: &dyn Layer, path: &str, x: Flow) -> Result<Flow> {
        let shape = layer
            .output_shape(&x.shape)
            .map_err(|e| if path.is_empty() { e } else { e.at(path) })?;
        let n = x.shape[0] as u64;
        let any = layer.as_any();
        if let Some(seq) = any.downcast_ref::<Sequential>() {
            let mut x = x;
            for (name, child) in seq.layers() {
                x = self.walk(child.as_ref(), &join(path, name), x)?;
            }
            return Ok(x);
        }
        if let Some(res) = any.downcast_ref::<Residual>() {
            let body = self.walk(res.body(), &join(path, "body"), x.clone())?;
            let skip = match res.shortcut() {
                Some(s) => self.walk(s, &join(path, "shortcut"), x)?,
                None => x,
            };
            if body.factor != skip.factor {
                return Err(PruneError::Unsupported {
                    path: path.to_string(),
                    kind: layer.kind().to_string(),
                    reason: "adds a flattened tensor to an unflattened one".into(),
                });
            }
            let space = self.union(body.space, skip.space);
            return Ok(Flow { space, factor: body.factor, shape: body.shape });
        }
        if let Some(conv) = any.downcast_ref::<Conv2d>() {
            let c = conv.config;
            let per_filter = (shape[2] * shape[3]) as u64 * (c.kernel.0 * c.kernel.1) as u64 * n;
            if c.groups == 1 {
                self.add_member(x.space, path, layer, Role::Consumer { factor: 1 });
                let member =
                    Member { path: path.into(), kind: layer.kind().into(), role: Role::Producer };
                let out = self.new_space(c.out_channels, Some(member));
                self.term(per_filter, &[x.space, out]);
                return Ok(Flow { space: out, factor: 1, shape });
            }
            if c.groups == c.in_channels && c.out_channels == c.in_channels {
                self.add_member(x.space, path, layer, Role::PerChannel);
                self.term(per_filter, &[x.space]);
                return Ok(Flow { shape, ..x });
            }
            return self.unsupported(
                layer,
                path,
                &x,
                &format!(
                    "grouped convolution ({} groups, {} -> {} channels): only ungrouped and \
                     depthwise (groups = in = out) convolutions can be pruned",
                    c.groups, c.in_channels, c.out_channels
                ),
            );
        }
        if let Some(fc) = any.downcast_ref::<Linear>() {
            self.add_member(x.space, path, layer, Role::Consumer { factor: x.factor });
            let member =
                Member { path: path.into(), kind: layer.kind().into(), role: Role::Producer };
            let out = self.new_space(fc.out_features(), Some(member));
            self.term(n * x.factor as u64, &[x.space, out]);
            return Ok(Flow { space: out, factor: 1, shape });
        }
        if any.is::<BatchNorm>() {
            if x.factor != 1 {
                return self.unsupported(
                    layer,
                    path,
                    &x,
                    "normalises flattened features, not channels",
                );
            }
            self.add_member(x.space, path, layer, Role::PerChannel);
            self.term(2 * x.shape.iter().product::<usize>() as u64 / x.shape[1] as u64, &[x.space]);
            return Ok(Flow { shape, ..x });
        }
        if is::<Flatten>(layer) {
            let spatial: usize = x.shape[2..].iter().product();
            return Ok(Flow { space: x.space, factor: x.factor * spatial, shape });
        }
        let elementwise = [
            is::<Relu>(layer),
            is::<Sigmoid>(layer),
            is::<Tanh>(layer),
            is::<Dropout>(layer),
            is::<MaxPool2d>(layer),
            is::<AvgPool2d>(layer),
            is::<GlobalAvgPool>(layer),
        ];
        if elementwise.iter().any(|&b| b) {
            // Channel-wise layers: whatever they cost scales with the channel count.
            let macs = layer.cost(&x.shape).map_err(|e| e.at(path))?.macs;
            let per = x.shape[1] as u64;
            if macs % per == 0 {
                self.term(macs / per, &[x.space]);
            } else {
                self.term(macs, &[]);
            }
            return Ok(Flow { shape, ..x });
        }
        if is::<Softmax>(layer) || is::<LogSoftmax>(layer) {
            let why = Blocked::ChannelMixing { path: path.into(), kind: layer.kind().into() };
            return self.opaque(layer, path, &x, why);
        }
        self.unsupported(
            layer,
            path,
            &x,
            "unknown to the structured-pruning analysis (compressed or custom layer)",
        )
    }

    fn finish(mut self, input: &[usize]) -> ChannelGroups {
        let roots: Vec<usize> =
            (0..self.spaces.len()).filter(|&s| self.spaces[s].parent == s).collect();
        let mut order = roots.clone();
        order.sort_by_key(|&r| self.spaces[r].order);
        let mut index = vec![usize::MAX; self.spaces.len()];
        for (i, &r) in order.iter().enumerate() {
            index[r] = i;
        }
        let terms = std::mem::take(&mut self.terms)
            .into_iter()
            .map(|t| CostTerm {
                coef: t.coef,
                groups: t.groups.iter().map(|&s| index[self.find(s)]).collect(),
            })
            .collect();
        let groups = order
            .iter()
            .map(|&r| {
                let s = &mut self.spaces[r];
                ChannelGroup {
                    channels: s.width,
                    members: std::mem::take(&mut s.members),
                    blocked: std::mem::take(&mut s.blocked),
                }
            })
            .collect();
        ChannelGroups { groups, terms, input_shape: input.to_vec() }
    }
}
