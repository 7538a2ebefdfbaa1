//! Max, average and global-average pooling over NCHW input.

use super::{Layer, Mode, expect_shape, layer_boilerplate, no_cache};
use crate::{CoreError, Result};
use ndarray::{Array4, ArrayD, Axis, Ix4, Zip};

/// Window geometry shared by max and average pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    kernel: usize,
    stride: usize,
}

impl Window {
    fn new(name: &str, kernel: usize, stride: usize) -> Result<Self> {
        if kernel == 0 || stride == 0 {
            return Err(CoreError::param(
                format!("{name} kernel/stride"),
                format!("{kernel}/{stride}"),
                "must be positive",
            ));
        }
        Ok(Self { kernel, stride })
    }

    fn out_shape(&self, name: &str, input: &[usize]) -> Result<Vec<usize>> {
        expect_shape(name, input, &[None, None, None])?;
        let (h, w) = (input[2], input[3]);
        if h < self.kernel || w < self.kernel {
            return Err(CoreError::shape(
                name,
                format!("height and width >= {}", self.kernel),
                input,
            ));
        }
        Ok(vec![
            input[0],
            input[1],
            (h - self.kernel) / self.stride + 1,
            (w - self.kernel) / self.stride + 1,
        ])
    }
}

/// Max pooling with a square window (no padding), as `nn.MaxPool2d(k, stride)`.
///
/// ```
/// use deepcompress_core::layer::{Layer, MaxPool2d, Mode};
/// use ndarray::Array4;
/// let mut pool = MaxPool2d::new(2, 2).unwrap();
/// let x = Array4::from_shape_fn((1, 1, 2, 2), |(_, _, i, j)| (2 * i + j) as f32).into_dyn();
/// assert_eq!(pool.forward(x, Mode::Eval).unwrap().into_raw_vec_and_offset().0, vec![3.0]);
/// ```
#[derive(Debug, Clone)]
pub struct MaxPool2d {
    window: Window,
    cache: Option<(Vec<usize>, Array4<u32>)>,
}

impl MaxPool2d {
    /// A `kernel x kernel` window moving by `stride`.
    pub fn new(kernel: usize, stride: usize) -> Result<Self> {
        Ok(Self { window: Window::new("MaxPool2d", kernel, stride)?, cache: None })
    }
}

impl Layer for MaxPool2d {
    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let out = self.window.out_shape("MaxPool2d", x.shape())?;
        let in_shape = x.shape().to_vec();
        let x = x.into_dimensionality::<Ix4>().expect("checked 4-D");
        let (k, s) = (self.window.kernel, self.window.stride);
        let dims = (out[0], out[1], out[2], out[3]);
        let mut y = Array4::<f32>::zeros(dims);
        let mut arg = Array4::<u32>::zeros(dims);
        let (h, w) = (in_shape[2], in_shape[3]);
        Zip::from(y.outer_iter_mut()).and(arg.outer_iter_mut()).and(x.outer_iter()).par_for_each(
            |mut yn, mut an, xn| {
                let xn = xn.as_standard_layout();
                let xs = xn.as_slice().expect("standard layout");
                let ys = yn.as_slice_mut().expect("fresh array");
                let at_out = an.as_slice_mut().expect("fresh array");
                let mut o = 0;
                for c in 0..dims.1 {
                    let plane = &xs[c * h * w..(c + 1) * h * w];
                    for i in 0..dims.2 {
                        for j in 0..dims.3 {
                            let (mut best, mut at) = (f32::NEG_INFINITY, 0usize);
                            for di in 0..k {
                                let row = (i * s + di) * w + j * s;
                                for (dj, &v) in plane[row..row + k].iter().enumerate() {
                                    if v > best {
                                        best = v;
                                        at = row + dj;
                                    }
                                }
                            }
                            ys[o] = best;
                            at_out[o] = at as u32;
                            o += 1;
                        }
                    }
                }
            },
        );
        self.cache = (mode == Mode::Train).then_some((in_shape, arg));
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let (in_shape, arg) = self.cache.as_ref().ok_or_else(|| no_cache("MaxPool2d"))?;
        if grad.shape() != arg.shape() {
            return Err(CoreError::shape(
                "MaxPool2d backward",
                format!("{:?}", arg.shape()),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let g = grad.into_dimensionality::<Ix4>().expect("checked 4-D");
        let mut dx = Array4::<f32>::zeros((in_shape[0], in_shape[1], in_shape[2], in_shape[3]));
        let w = in_shape[3];
        let plane = in_shape[2] * w;
        let per_channel = arg.shape()[2] * arg.shape()[3];
        Zip::from(dx.outer_iter_mut()).and(g.outer_iter()).and(arg.outer_iter()).par_for_each(
            |mut dn, gn, an| {
                let ds = dn.as_slice_mut().expect("fresh array");
                let gn = gn.as_standard_layout();
                let gs = gn.as_slice().expect("standard layout");
                let ats = an.as_slice().expect("fresh array");
                for (o, (&gv, &at)) in gs.iter().zip(ats).enumerate() {
                    ds[(o / per_channel) * plane + at as usize] += gv;
                }
            },
        );
        Ok(Some(dx.into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.window.out_shape("MaxPool2d", input)
    }

    layer_boilerplate!();
}

/// Average pooling with a square window (no padding), as `nn.AvgPool2d(k, stride)`.
///
/// ```
/// use deepcompress_core::layer::{AvgPool2d, Layer, Mode};
/// use ndarray::Array4;
/// let mut pool = AvgPool2d::new(2, 2).unwrap();
/// let x = Array4::from_shape_fn((1, 1, 2, 2), |(_, _, i, j)| (2 * i + j) as f32).into_dyn();
/// assert_eq!(pool.forward(x, Mode::Eval).unwrap().into_raw_vec_and_offset().0, vec![1.5]);
/// ```
#[derive(Debug, Clone)]
pub struct AvgPool2d {
    window: Window,
    in_shape: Option<Vec<usize>>,
}

impl AvgPool2d {
    /// A `kernel x kernel` window moving by `stride`.
    pub fn new(kernel: usize, stride: usize) -> Result<Self> {
        Ok(Self { window: Window::new("AvgPool2d", kernel, stride)?, in_shape: None })
    }
}

impl Layer for AvgPool2d {
    fn kind(&self) -> &'static str {
        "AvgPool2d"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        let out = self.window.out_shape("AvgPool2d", x.shape())?;
        let in_shape = x.shape().to_vec();
        let x = x.into_dimensionality::<Ix4>().expect("checked 4-D");
        let (k, s) = (self.window.kernel, self.window.stride);
        let norm = 1.0 / (k * k) as f32;
        let y = Array4::from_shape_fn((out[0], out[1], out[2], out[3]), |(n, c, i, j)| {
            let mut acc = 0.0;
            for di in 0..k {
                for dj in 0..k {
                    acc += x[[n, c, i * s + di, j * s + dj]];
                }
            }
            acc * norm
        });
        self.in_shape = (mode == Mode::Train).then_some(in_shape);
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let in_shape = self.in_shape.as_ref().ok_or_else(|| no_cache("AvgPool2d"))?;
        let out = self.window.out_shape("AvgPool2d", in_shape)?;
        if grad.shape() != out.as_slice() {
            return Err(CoreError::shape("AvgPool2d backward", format!("{out:?}"), grad.shape()));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let g = grad.into_dimensionality::<Ix4>().expect("checked 4-D");
        let (k, s) = (self.window.kernel, self.window.stride);
        let norm = 1.0 / (k * k) as f32;
        let mut dx = Array4::<f32>::zeros((in_shape[0], in_shape[1], in_shape[2], in_shape[3]));
        for ((n, c, i, j), &v) in g.indexed_iter() {
            for di in 0..k {
                for dj in 0..k {
                    dx[[n, c, i * s + di, j * s + dj]] += v * norm;
                }
            }
        }
        Ok(Some(dx.into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.window.out_shape("AvgPool2d", input)
    }

    layer_boilerplate!();
}

/// Global average pooling: `[n, c, h, w] -> [n, c]` (`AdaptiveAvgPool2d(1)` + flatten).
///
/// ```
/// use deepcompress_core::layer::{GlobalAvgPool, Layer, Mode};
/// use ndarray::ArrayD;
/// let mut gap = GlobalAvgPool::default();
/// let y = gap.forward(ArrayD::ones(vec![2, 3, 4, 4]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[2, 3]);
/// assert_eq!(y[[1, 2]], 1.0);
/// ```
#[derive(Debug, Clone, Default)]
pub struct GlobalAvgPool {
    in_shape: Option<Vec<usize>>,
}

impl Layer for GlobalAvgPool {
    fn kind(&self) -> &'static str {
        "GlobalAvgPool"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        expect_shape("GlobalAvgPool", x.shape(), &[None, None, None])?;
        let in_shape = x.shape().to_vec();
        let area = (in_shape[2] * in_shape[3]).max(1) as f32;
        let y = x.sum_axis(Axis(3)).sum_axis(Axis(2)) / area;
        self.in_shape = (mode == Mode::Train).then_some(in_shape);
        Ok(y)
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let s = self.in_shape.as_ref().ok_or_else(|| no_cache("GlobalAvgPool"))?;
        if grad.shape() != [s[0], s[1]] {
            return Err(CoreError::shape(
                "GlobalAvgPool backward",
                format!("[{}, {}]", s[0], s[1]),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let area = (s[2] * s[3]).max(1) as f32;
        let g = grad.into_shape_with_order((s[0], s[1], 1, 1)).expect("reshape grad") / area;
        let dx = g.broadcast((s[0], s[1], s[2], s[3])).expect("broadcast").to_owned();
        Ok(Some(dx.into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        expect_shape("GlobalAvgPool", input, &[None, None, None])?;
        Ok(vec![input[0], input[1]])
    }

    layer_boilerplate!();
}
