//! 2-D convolution (stride, padding, dilation, groups) as im2col + GEMM per image.

use super::{Layer, LayerCost, Mode, expect_shape, init, layer_boilerplate, no_cache};
use crate::ops::{self, ConvGeometry};
use crate::param::Param;
use crate::{CoreError, Result};
use ndarray::{Array2, Array4, ArrayD, ArrayView2, Axis, Ix1, Ix4, s};
use rayon::prelude::*;

/// Images are processed in this many fixed chunks so that gradient sums are added in the
/// same order whatever the thread count (same seed, same bits).
const GRAD_CHUNKS: usize = 8;

/// Hyper-parameters of a [`Conv2d`].
///
/// ```
/// use deepcompress_core::layer::Conv2dConfig;
/// let depthwise = Conv2dConfig::new(32, 32, 3).padding(1).groups(32);
/// assert_eq!(depthwise.groups, 32);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dConfig {
    /// Input channels.
    pub in_channels: usize,
    /// Output channels (filters).
    pub out_channels: usize,
    /// Kernel height and width.
    pub kernel: (usize, usize),
    /// Stride.
    pub stride: (usize, usize),
    /// Zero padding.
    pub padding: (usize, usize),
    /// Dilation.
    pub dilation: (usize, usize),
    /// Groups (`in_channels` for depthwise).
    pub groups: usize,
    /// Whether the layer has a bias.
    pub bias: bool,
}

impl Conv2dConfig {
    /// A square `k x k` convolution with stride 1, no padding, one group, bias.
    pub fn new(in_channels: usize, out_channels: usize, k: usize) -> Self {
        Self {
            in_channels,
            out_channels,
            kernel: (k, k),
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
            bias: true,
        }
    }
    /// Sets a square stride.
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = (s, s);
        self
    }
    /// Sets square zero padding.
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = (p, p);
        self
    }
    /// Sets a square dilation.
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = (d, d);
        self
    }
    /// Sets the number of groups.
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    /// Sets whether there is a bias.
    pub fn bias(mut self, b: bool) -> Self {
        self.bias = b;
        self
    }

    /// Rejects zero sizes and channel counts that groups do not divide.
    pub fn check(&self) -> Result<()> {
        let positive = [
            ("in_channels", self.in_channels),
            ("out_channels", self.out_channels),
            ("kernel", self.kernel.0.min(self.kernel.1)),
            ("stride", self.stride.0.min(self.stride.1)),
            ("dilation", self.dilation.0.min(self.dilation.1)),
            ("groups", self.groups),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(CoreError::param(format!("Conv2d {name}"), v, "must be positive"));
            }
        }
        if self.in_channels % self.groups != 0 || self.out_channels % self.groups != 0 {
            return Err(CoreError::param(
                "Conv2d groups",
                self.groups,
                format!(
                    "must divide in_channels {} and out_channels {}",
                    self.in_channels, self.out_channels
                ),
            ));
        }
        Ok(())
    }
}

/// 2-D convolution over NCHW input with weight `[out, in/groups, kh, kw]`.
///
/// ```
/// use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Mode};
/// use ndarray::ArrayD;
/// let mut conv = Conv2d::new(Conv2dConfig::new(1, 20, 5), 0).unwrap();
/// let y = conv.forward(ArrayD::zeros(vec![2, 1, 28, 28]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[2, 20, 24, 24]);
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// Hyper-parameters.
    pub config: Conv2dConfig,
    /// Weight `[out, in/groups, kh, kw]`.
    pub weight: Param,
    /// Optional bias `[out]`.
    pub bias: Option<Param>,
    cache: Option<Cache>,
}

#[derive(Debug, Clone)]
struct Cache {
    in_shape: [usize; 4],
    cols: Vec<Array2<f32>>,
}

impl Conv2d {
    /// A convolution with PyTorch's default initialisation from `seed`.
    pub fn new(config: Conv2dConfig, seed: u64) -> Result<Self> {
        config.check()?;
        let c = &config;
        let fan_in = c.in_channels / c.groups * c.kernel.0 * c.kernel.1;
        let bound = 1.0 / (fan_in as f32).sqrt();
        let mut rng = init::rng(seed);
        let shape = [c.out_channels, c.in_channels / c.groups, c.kernel.0, c.kernel.1];
        let w = init::uniform(&shape, bound, &mut rng);
        let b = c.bias.then(|| Param::new(init::uniform(&[c.out_channels], bound, &mut rng)));
        Ok(Self { config, weight: Param::new(w), bias: b, cache: None })
    }

    /// A convolution from a given weight `[out, in/groups, kh, kw]` and bias.
    pub fn from_weights(
        config: Conv2dConfig,
        weight: Array4<f32>,
        bias: Option<ndarray::Array1<f32>>,
    ) -> Result<Self> {
        let c = Conv2dConfig { bias: bias.is_some(), ..config };
        c.check()?;
        let want = [c.out_channels, c.in_channels / c.groups, c.kernel.0, c.kernel.1];
        if weight.shape() != want {
            return Err(CoreError::shape("Conv2d weight", format!("{want:?}"), weight.shape()));
        }
        if let Some(b) = &bias {
            if b.len() != c.out_channels {
                return Err(CoreError::shape(
                    "Conv2d bias",
                    format!("[{}]", c.out_channels),
                    b.shape(),
                ));
            }
        }
        Ok(Self {
            config: c,
            weight: Param::new(weight.into_dyn()),
            bias: bias.map(|b| Param::new(b.into_dyn())),
            cache: None,
        })
    }

    fn geometry(&self, h: usize, w: usize) -> ConvGeometry {
        let c = &self.config;
        ConvGeometry {
            channels: c.in_channels,
            in_hw: (h, w),
            kernel: c.kernel,
            stride: c.stride,
            padding: c.padding,
            dilation: c.dilation,
        }
    }

    /// Output height and width for an input shape, with a shape error naming the layer.
    fn out_hw(&self, input: &[usize]) -> Result<(usize, usize)> {
        expect_shape("Conv2d", input, &[Some(self.config.in_channels), None, None])?;
        self.geometry(input[2], input[3]).out_hw().ok_or_else(|| {
            CoreError::shape(
                "Conv2d",
                format!("spatial size covering the {:?} kernel", self.config.kernel),
                input,
            )
        })
    }

    /// The weight as `[out, in/groups*kh*kw]`.
    fn weight_matrix(w: &ArrayD<f32>) -> ArrayView2<'_, f32> {
        let out = w.shape()[0];
        let inner = w.len() / out.max(1);
        w.view().into_shape_with_order((out, inner)).expect("contiguous weight")
    }
}

impl Layer for Conv2d {
    fn kind(&self) -> &'static str {
        "Conv2d"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let (oh, ow) = self.out_hw(x.shape())?;
        let x = x.into_dimensionality::<Ix4>().expect("checked 4-D");
        let (n, _, h, w) = x.dim();
        let c = self.config;
        let geo = self.geometry(h, w);
        let (opg, rows_pg) = (c.out_channels / c.groups, geo.col_rows() / c.groups);
        let weight = self.weight.effective();
        let wm = Self::weight_matrix(&weight);
        let mut y = Array4::<f32>::zeros((n, c.out_channels, oh, ow));
        let cols: Vec<Array2<f32>> = y
            .axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(x.axis_iter(Axis(0)).into_par_iter())
            .map(|(mut yi, xi)| {
                let mut col = Array2::<f32>::zeros((geo.col_rows(), oh * ow));
                ops::im2col(xi, &geo, col.view_mut());
                let mut yi = yi
                    .view_mut()
                    .into_shape_with_order((c.out_channels, oh * ow))
                    .expect("contiguous");
                for g in 0..c.groups {
                    ops::gemm(
                        1.0,
                        wm.slice(s![g * opg..(g + 1) * opg, ..]),
                        col.slice(s![g * rows_pg..(g + 1) * rows_pg, ..]),
                        false,
                        yi.slice_mut(s![g * opg..(g + 1) * opg, ..]),
                    );
                }
                col
            })
            .collect();
        if let Some(b) = &self.bias {
            let b = b.value().view().into_dimensionality::<Ix1>().expect("1-D bias");
            y += &b.view().into_shape_with_order((c.out_channels, 1, 1)).expect("reshape bias");
        }
        self.cache =
            (mode == Mode::Train).then_some(Cache { in_shape: [n, c.in_channels, h, w], cols });
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let cache = self.cache.as_ref().ok_or_else(|| no_cache("Conv2d"))?;
        let [n, cin, h, w] = cache.in_shape;
        let (oh, ow) = self.out_hw(&cache.in_shape)?;
        let c = self.config;
        if grad.shape() != [n, c.out_channels, oh, ow] {
            return Err(CoreError::shape(
                "Conv2d backward",
                format!("[{n}, {}, {oh}, {ow}]", c.out_channels),
                grad.shape(),
            ));
        }
        let g4 = grad.into_dimensionality::<Ix4>().expect("checked 4-D");
        let geo = self.geometry(h, w);
        let (opg, rows_pg) = (c.out_channels / c.groups, geo.col_rows() / c.groups);
        let weight = self.weight.effective().into_owned();
        let wm = Self::weight_matrix(&weight);
        let wshape = wm.dim();
        let mut dx = need_input_grad.then(|| Array4::<f32>::zeros((n, cin, h, w)));
        let chunk = n.div_ceil(GRAD_CHUNKS).max(1);

        // One partial weight gradient per fixed chunk of images, summed in order below.
        let work = |i0: usize, mut dx_chunk: Option<ndarray::ArrayViewMut4<f32>>| {
            let mut dw = Array2::<f32>::zeros(wshape);
            let end = (i0 + chunk).min(n);
            for i in i0..end {
                let gi = g4.index_axis(Axis(0), i);
                let gi =
                    gi.into_shape_with_order((c.out_channels, oh * ow)).expect("contiguous grad");
                let col = &cache.cols[i];
                let mut dcol = dx_chunk.as_ref().map(|_| Array2::<f32>::zeros(col.dim()));
                for g in 0..c.groups {
                    let go = gi.slice(s![g * opg..(g + 1) * opg, ..]);
                    let cg = col.slice(s![g * rows_pg..(g + 1) * rows_pg, ..]);
                    ops::gemm(1.0, go, cg.t(), true, dw.slice_mut(s![g * opg..(g + 1) * opg, ..]));
                    if let Some(dc) = &mut dcol {
                        let wg = wm.slice(s![g * opg..(g + 1) * opg, ..]);
                        ops::gemm(
                            1.0,
                            wg.t(),
                            go,
                            false,
                            dc.slice_mut(s![g * rows_pg..(g + 1) * rows_pg, ..]),
                        );
                    }
                }
                if let (Some(dc), Some(dxc)) = (&dcol, &mut dx_chunk) {
                    ops::col2im_add(dc.view(), &geo, dxc.index_axis_mut(Axis(0), i - i0));
                }
            }
            dw
        };
        let partials: Vec<Array2<f32>> = match &mut dx {
            Some(dx) => dx
                .axis_chunks_iter_mut(Axis(0), chunk)
                .into_par_iter()
                .enumerate()
                .map(|(k, dxc)| work(k * chunk, Some(dxc)))
                .collect(),
            None => (0..n.div_ceil(chunk)).into_par_iter().map(|k| work(k * chunk, None)).collect(),
        };
        let mut gw = self
            .weight
            .grad_mut()
            .view_mut()
            .into_shape_with_order(wshape)
            .expect("contiguous grad");
        for p in &partials {
            gw += p;
        }
        if let Some(b) = &mut self.bias {
            let db = g4.sum_axis(Axis(3)).sum_axis(Axis(2)).sum_axis(Axis(0));
            *b.grad_mut() += &db.into_dyn();
        }
        Ok(dx.map(|d| d.into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        let (oh, ow) = self.out_hw(input)?;
        Ok(vec![input[0], self.config.out_channels, oh, ow])
    }

    fn cost(&self, input: &[usize]) -> Result<LayerCost> {
        let (oh, ow) = self.out_hw(input)?;
        let per_out = self.weight.len() / self.config.out_channels;
        let macs = (input[0] * self.config.out_channels * oh * ow * per_out) as u64;
        Ok(LayerCost::dense(self.params().into_iter().map(|(_, p)| p), macs))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        let mut v = vec![("weight", &self.weight)];
        if let Some(b) = &self.bias {
            v.push(("bias", b));
        }
        v
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        let mut v = vec![("weight", &mut self.weight)];
        if let Some(b) = &mut self.bias {
            v.push(("bias", b));
        }
        v
    }

    layer_boilerplate!();
}
