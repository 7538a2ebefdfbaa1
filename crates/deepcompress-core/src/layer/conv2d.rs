//! 2-D convolution (stride, padding, dilation, groups) as im2col + GEMM per image.

use super::{
    Layer, LayerCost, Mode, expect_shape, init, layer_boilerplate, no_cache, weight_and_bias,
    weight_and_bias_mut,
};
use crate::ops::{self, ConvGeometry};
use crate::param::Param;
use crate::{CoreError, Result};
use ndarray::{Array2, Array3, Array4, ArrayD, ArrayView2, ArrayView4, Axis, Ix4, s};
use rayon::prelude::*;

/// Images are processed in this many fixed chunks (one GEMM each): enough to keep two
/// cores busy, few enough for large GEMMs, and fixed so that gradient sums are added in
/// the same order whatever the thread count (same seed, same bits).
const IMAGE_CHUNKS: usize = 4;

/// Up to [`IMAGE_CHUNKS`] contiguous ranges of images whose sizes differ by at most one.
fn image_chunks(n: usize) -> Vec<std::ops::Range<usize>> {
    let k = IMAGE_CHUNKS.min(n).max(1);
    let (base, extra) = (n / k, n % k);
    let mut start = 0;
    (0..k)
        .map(|i| {
            let len = base + usize::from(i < extra);
            start += len;
            start - len..start
        })
        .collect()
}

/// Convolution as one matrix product per chunk of images: builds the im2col matrix
/// `[c·kh·kw, images·oh·ow]` of each chunk, lets `mm` turn it into `[out, images·oh·ow]`,
/// and returns the NCHW output with the column matrices (which backward reuses).
pub(crate) fn conv_by_chunks(
    x: ArrayView4<f32>,
    geo: &ConvGeometry,
    out_channels: usize,
    (oh, ow): (usize, usize),
    mm: impl Fn(ArrayView2<f32>) -> Result<Array2<f32>> + Sync,
) -> Result<(Array4<f32>, Vec<Array2<f32>>)> {
    let n = x.shape()[0];
    let ohw = oh * ow;
    let parts: Vec<Result<(Array2<f32>, Array3<f32>)>> = image_chunks(n)
        .par_iter()
        .map(|r| {
            let nc = r.len();
            let mut cols = Array2::<f32>::zeros((geo.col_rows(), nc * ohw));
            for (j, i) in r.clone().enumerate() {
                ops::im2col(
                    x.index_axis(Axis(0), i),
                    geo,
                    cols.slice_mut(s![.., j * ohw..(j + 1) * ohw]),
                );
            }
            let ym = mm(cols.view())?;
            let y = ym.into_shape_with_order((out_channels, nc, ohw)).expect("contiguous");
            Ok((cols, y.permuted_axes([1, 0, 2]).as_standard_layout().into_owned()))
        })
        .collect();
    let parts = parts.into_iter().collect::<Result<Vec<_>>>()?;
    let views: Vec<_> = parts.iter().map(|(_, y)| y.view()).collect();
    let y = ndarray::concatenate(Axis(0), &views)
        .expect("chunks share their trailing shape")
        .into_shape_with_order((n, out_channels, oh, ow))
        .expect("contiguous");
    Ok((y, parts.into_iter().map(|(cols, _)| cols).collect()))
}

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

    /// The im2col geometry for an `h x w` input.
    pub(crate) fn geometry(&self, h: usize, w: usize) -> ConvGeometry {
        ConvGeometry {
            channels: self.in_channels,
            in_hw: (h, w),
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }

    /// Output height and width for an NCHW input shape, or a shape error naming `layer`.
    ///
    /// ```
    /// use deepcompress_core::layer::Conv2dConfig;
    /// let c = Conv2dConfig::new(3, 8, 5).stride(2);
    /// assert_eq!(c.out_hw("conv", &[1, 3, 28, 28])?, (12, 12));
    /// assert!(c.out_hw("conv", &[1, 4, 28, 28]).is_err());
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn out_hw(&self, layer: &str, input: &[usize]) -> Result<(usize, usize)> {
        expect_shape(layer, input, &[Some(self.in_channels), None, None])?;
        self.geometry(input[2], input[3]).out_hw().ok_or_else(|| {
            CoreError::shape(
                layer,
                format!("spatial size covering the {:?} kernel", self.kernel),
                input,
            )
        })
    }

    /// Runs this (ungrouped) convolution on an NCHW input through a caller's matrix
    /// product: `mm` receives each chunk's im2col matrix `[in·kh·kw, images·oh·ow]` and
    /// returns `[out, images·oh·ow]`. This is how inference layers with their own kernels
    /// (integer, sparse) reuse the im2col layout; the bias is left to the caller.
    ///
    /// ```
    /// use deepcompress_core::layer::Conv2dConfig;
    /// use ndarray::{Array2, ArrayD};
    /// let cfg = Conv2dConfig::new(1, 2, 3);
    /// // A product that sums each patch into both output channels.
    /// let y = cfg.convolve_with("conv", &ArrayD::ones(vec![1, 1, 4, 4]), |cols| {
    ///     let s = cols.sum_axis(ndarray::Axis(0));
    ///     Ok(Array2::from_shape_fn((2, s.len()), |(_, j)| s[j]))
    /// })?;
    /// assert_eq!(y.shape(), &[1, 2, 2, 2]);
    /// assert_eq!(y[[0, 1, 1, 1]], 9.0);
    /// # Ok::<(), deepcompress_core::CoreError>(())
    /// ```
    pub fn convolve_with(
        &self,
        layer: &str,
        x: &ArrayD<f32>,
        mm: impl Fn(ArrayView2<f32>) -> Result<Array2<f32>> + Sync,
    ) -> Result<Array4<f32>> {
        if self.groups != 1 {
            return Err(CoreError::param(
                format!("{layer} groups"),
                self.groups,
                "a custom product needs an ungrouped convolution",
            ));
        }
        let (oh, ow) = self.out_hw(layer, x.shape())?;
        let x4 = x.view().into_dimensionality::<Ix4>().expect("checked 4-D");
        let geo = self.geometry(x4.shape()[2], x4.shape()[3]);
        Ok(conv_by_chunks(x4, &geo, self.out_channels, (oh, ow), mm)?.0)
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
        if !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
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

    /// A convolution from a given weight `[out, in/groups, kh, kw]` (any memory layout)
    /// and bias.
    ///
    /// ```
    /// use deepcompress_core::layer::{Conv2d, Conv2dConfig, Layer, Mode};
    /// use ndarray::{Array4, ArrayD, IxDyn};
    /// // a weight in a non-standard layout (axes permuted) works like any other
    /// let w = Array4::<f32>::ones((3, 2, 1, 1)).permuted_axes([1, 0, 2, 3]);
    /// let mut conv = Conv2d::from_weights(Conv2dConfig::new(3, 2, 1), w.to_owned(), None).unwrap();
    /// let y = conv.forward(ArrayD::ones(IxDyn(&[1, 3, 2, 2])), Mode::Eval).unwrap();
    /// assert_eq!(y.shape(), &[1, 2, 2, 2]);
    /// ```
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
        if let Some(b) = &bias
            && b.len() != c.out_channels
        {
            return Err(CoreError::shape(
                "Conv2d bias",
                format!("[{}]", c.out_channels),
                b.shape(),
            ));
        }
        Ok(Self {
            config: c,
            weight: Param::new(weight.into_dyn()),
            bias: bias.map(|b| Param::new(b.into_dyn())),
            cache: None,
        })
    }
    fn geometry(&self, h: usize, w: usize) -> ConvGeometry {
        self.config.geometry(h, w)
    }

    fn out_hw(&self, input: &[usize]) -> Result<(usize, usize)> {
        self.config.out_hw("Conv2d", input)
    }

    /// Calls `f(output rows, column rows)` for each group.
    fn for_groups(&self, mut f: impl FnMut(std::ops::Range<usize>, std::ops::Range<usize>)) {
        let c = &self.config;
        let (opg, rpg) =
            (c.out_channels / c.groups, c.in_channels / c.groups * c.kernel.0 * c.kernel.1);
        for g in 0..c.groups {
            f(g * opg..(g + 1) * opg, g * rpg..(g + 1) * rpg);
        }
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
        let weight = self.weight.effective();
        let wm = Self::weight_matrix(&weight);
        let (mut y, cols) = conv_by_chunks(x.view(), &geo, c.out_channels, (oh, ow), |cols| {
            let mut ym = Array2::<f32>::zeros((c.out_channels, cols.ncols()));
            self.for_groups(|o, k| {
                ops::gemm(
                    1.0,
                    wm.slice(s![o.clone(), ..]),
                    cols.slice(s![k, ..]),
                    false,
                    ym.slice_mut(s![o, ..]),
                )
            });
            Ok(ym)
        })?;
        if let Some(b) = &self.bias {
            let b =
                b.value().view().into_shape_with_order((c.out_channels, 1, 1)).expect("1-D bias");
            y += &b;
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
        let ohw = oh * ow;
        let g4 = grad.into_dimensionality::<Ix4>().expect("checked 4-D");
        let geo = self.geometry(h, w);
        let weight = self.weight.effective().into_owned();
        let wm = Self::weight_matrix(&weight);
        let ranges = image_chunks(n);
        // Per chunk: the weight gradient `g x colsᵀ` and, when asked, the input gradient
        // through `Wᵀ g` and col2im. Chunks are fixed, and summed in order below.
        let parts: Vec<(Array2<f32>, Option<Array4<f32>>)> = ranges
            .par_iter()
            .zip(cache.cols.par_iter())
            .map(|(r, cols)| {
                let nc = r.len();
                let gm = g4
                    .slice(s![r.clone(), .., .., ..])
                    .into_shape_with_order((nc, c.out_channels, ohw))
                    .expect("contiguous grad")
                    .permuted_axes([1, 0, 2])
                    .as_standard_layout()
                    .into_owned()
                    .into_shape_with_order((c.out_channels, nc * ohw))
                    .expect("contiguous");
                let mut dw = Array2::<f32>::zeros(wm.dim());
                self.for_groups(|o, k| {
                    ops::gemm(
                        1.0,
                        gm.slice(s![o.clone(), ..]),
                        cols.slice(s![k, ..]).t(),
                        false,
                        dw.slice_mut(s![o, ..]),
                    )
                });
                let dx = need_input_grad.then(|| {
                    let mut dcols = Array2::<f32>::zeros(cols.dim());
                    self.for_groups(|o, k| {
                        ops::gemm(
                            1.0,
                            wm.slice(s![o.clone(), ..]).t(),
                            gm.slice(s![o, ..]),
                            false,
                            dcols.slice_mut(s![k, ..]),
                        )
                    });
                    let mut dx = Array4::<f32>::zeros((nc, cin, h, w));
                    for j in 0..nc {
                        ops::col2im_add(
                            dcols.slice(s![.., j * ohw..(j + 1) * ohw]),
                            &geo,
                            dx.index_axis_mut(Axis(0), j),
                        );
                    }
                    dx
                });
                (dw, dx)
            })
            .collect();
        let mut gw = self
            .weight
            .grad_mut()
            .view_mut()
            .into_shape_with_order(wm.dim())
            .expect("contiguous grad");
        for (dw, _) in &parts {
            gw += dw;
        }
        if let Some(b) = &mut self.bias {
            let db = g4.sum_axis(Axis(3)).sum_axis(Axis(2)).sum_axis(Axis(0));
            *b.grad_mut() += &db.into_dyn();
        }
        if !need_input_grad {
            return Ok(None);
        }
        let views: Vec<_> =
            parts.iter().filter_map(|(_, dx)| dx.as_ref().map(|d| d.view())).collect();
        Ok(Some(
            ndarray::concatenate(Axis(0), &views)
                .expect("chunks share their trailing shape")
                .into_dyn(),
        ))
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
        weight_and_bias(&self.weight, &self.bias)
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        weight_and_bias_mut(&mut self.weight, &mut self.bias)
    }

    layer_boilerplate!();
}
