//! Batch normalisation over channels (1-D: `[n, c]`, 2-D: `[n, c, h, w]`).

use super::{Layer, LayerCost, Mode, expect_shape, layer_boilerplate, no_cache};
use crate::param::Param;
use crate::{CoreError, Result};
use ndarray::{Array1, Array3, ArrayD, Axis, Ix1};

/// Batch normalisation (Ioffe and Szegedy 2015) with PyTorch's names and defaults
/// (`weight`, `bias`, `running_mean`, `running_var`; momentum 0.1, eps 1e-5, unbiased
/// running variance). Training mode normalises by batch statistics; eval mode by the
/// running ones.
///
/// ```
/// use deepcompress_core::layer::{BatchNorm, Layer, Mode};
/// use ndarray::ArrayD;
/// let mut bn = BatchNorm::new_2d(8);
/// assert_eq!(bn.kind(), "BatchNorm2d");
/// let y = bn.forward(ArrayD::ones(vec![4, 8, 3, 3]), Mode::Train).unwrap();
/// assert!(y.iter().all(|v| v.abs() < 1e-3)); // constant input normalises to zero
/// ```
#[derive(Debug, Clone)]
pub struct BatchNorm {
    spatial: bool,
    /// Scale γ `[c]`.
    pub weight: Param,
    /// Shift β `[c]`.
    pub bias: Param,
    /// Running mean `[c]`.
    pub running_mean: ArrayD<f32>,
    /// Running (unbiased) variance `[c]`.
    pub running_var: ArrayD<f32>,
    /// Weight of the new batch in the running statistics.
    pub momentum: f32,
    /// Added to the variance for stability.
    pub eps: f32,
    cache: Option<Cache>,
}

#[derive(Debug, Clone)]
struct Cache {
    xhat: Array3<f32>,
    inv_std: Array1<f32>,
    shape: Vec<usize>,
}

impl BatchNorm {
    /// `BatchNorm1d(channels)` for `[n, c]` input.
    pub fn new_1d(channels: usize) -> Self {
        Self::new(channels, false)
    }

    /// `BatchNorm2d(channels)` for `[n, c, h, w]` input.
    pub fn new_2d(channels: usize) -> Self {
        Self::new(channels, true)
    }

    fn new(c: usize, spatial: bool) -> Self {
        Self {
            spatial,
            weight: Param::new(ArrayD::ones(vec![c])),
            bias: Param::new(ArrayD::zeros(vec![c])),
            running_mean: ArrayD::zeros(vec![c]),
            running_var: ArrayD::ones(vec![c]),
            momentum: 0.1,
            eps: 1e-5,
            cache: None,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.weight.len()
    }

    /// Keeps only the listed channels (structured pruning removes the others).
    pub fn retain_channels(&mut self, keep: &[usize]) -> Result<()> {
        let c = self.channels();
        if let Some(&bad) = keep.iter().find(|&&k| k >= c) {
            return Err(CoreError::param(
                "BatchNorm channel",
                bad,
                format!("out of range for {c} channels"),
            ));
        }
        let pick = |a: &ArrayD<f32>| a.select(Axis(0), keep);
        self.weight = Param::new(pick(self.weight.value()));
        self.bias = Param::new(pick(self.bias.value()));
        self.running_mean = pick(&self.running_mean);
        self.running_var = pick(&self.running_var);
        self.cache = None;
        Ok(())
    }

    fn check(&self, shape: &[usize]) -> Result<()> {
        let c = Some(self.channels());
        if self.spatial {
            expect_shape("BatchNorm2d", shape, &[c, None, None])
        } else {
            expect_shape("BatchNorm1d", shape, &[c])
        }
    }

    /// `[n, c, h*w]` view of the input (`h*w = 1` for 1-D).
    fn as3(x: ArrayD<f32>) -> Array3<f32> {
        let s = x.shape().to_vec();
        let rest = s[2..].iter().product::<usize>();
        let x = if x.is_standard_layout() { x } else { x.as_standard_layout().into_owned() };
        x.into_shape_with_order((s[0], s[1], rest)).expect("standard layout")
    }

    fn vec1(a: &ArrayD<f32>) -> ndarray::ArrayView1<'_, f32> {
        a.view().into_dimensionality::<Ix1>().expect("1-D")
    }
}

impl Layer for BatchNorm {
    fn kind(&self) -> &'static str {
        if self.spatial { "BatchNorm2d" } else { "BatchNorm1d" }
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        self.check(x.shape())?;
        let shape = x.shape().to_vec();
        let mut x3 = Self::as3(x);
        let (n, c, r) = x3.dim();
        let count = (n * r) as f32;
        let (mean, var) = if mode == Mode::Train {
            if n * r < 2 {
                return Err(CoreError::shape(
                    self.kind(),
                    "more than one value per channel in training",
                    &shape,
                ));
            }
            let mean = x3.sum_axis(Axis(2)).sum_axis(Axis(0)) / count;
            let centred = &x3 - &mean.view().into_shape_with_order((1, c, 1)).expect("reshape");
            let var = centred.mapv(|v| v * v).sum_axis(Axis(2)).sum_axis(Axis(0)) / count;
            let m = self.momentum;
            let unbiased = &var * (count / (count - 1.0));
            self.running_mean =
                (&Self::vec1(&self.running_mean) * (1.0 - m) + &mean * m).into_dyn();
            self.running_var =
                (&Self::vec1(&self.running_var) * (1.0 - m) + &unbiased * m).into_dyn();
            (mean, var)
        } else {
            (Self::vec1(&self.running_mean).to_owned(), Self::vec1(&self.running_var).to_owned())
        };
        let inv_std = var.mapv(|v| 1.0 / (v + self.eps).sqrt());
        let (gamma, beta) = (Self::vec1(self.weight.value()), Self::vec1(self.bias.value()));
        for ch in 0..c {
            let (mu, is) = (mean[ch], inv_std[ch]);
            x3.index_axis_mut(Axis(1), ch).mapv_inplace(|v| (v - mu) * is);
        }
        let xhat = (mode == Mode::Train).then(|| x3.clone());
        for ch in 0..c {
            let (g, b) = (gamma[ch], beta[ch]);
            x3.index_axis_mut(Axis(1), ch).mapv_inplace(|v| v * g + b);
        }
        self.cache = xhat.map(|xhat| Cache { xhat, inv_std, shape: shape.clone() });
        Ok(x3.into_shape_with_order(shape).expect("same length").into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let cache = self.cache.as_ref().ok_or_else(|| no_cache(self.kind()))?;
        if grad.shape() != cache.shape.as_slice() {
            return Err(CoreError::shape(
                "BatchNorm backward",
                format!("{:?}", cache.shape),
                grad.shape(),
            ));
        }
        let g = Self::as3(grad);
        let (n, c, r) = g.dim();
        let m = (n * r) as f32;
        let dbeta = g.sum_axis(Axis(2)).sum_axis(Axis(0));
        let dgamma = (&g * &cache.xhat).sum_axis(Axis(2)).sum_axis(Axis(0));
        *self.weight.grad_mut() += &dgamma.clone().into_dyn();
        *self.bias.grad_mut() += &dbeta.clone().into_dyn();
        if !need_input_grad {
            return Ok(None);
        }
        let gamma = Self::vec1(self.weight.value());
        let mut dx = g;
        for ch in 0..c {
            let k = gamma[ch] * cache.inv_std[ch] / m;
            let (sb, sg) = (dbeta[ch], dgamma[ch]);
            let xh = cache.xhat.index_axis(Axis(1), ch);
            let mut d = dx.index_axis_mut(Axis(1), ch);
            ndarray::Zip::from(&mut d).and(&xh).for_each(|d, &xh| *d = k * (m * *d - sb - xh * sg));
        }
        Ok(Some(dx.into_shape_with_order(cache.shape.clone()).expect("same length").into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        self.check(input)?;
        Ok(input.to_vec())
    }

    fn cost(&self, input: &[usize]) -> Result<LayerCost> {
        self.check(input)?;
        // Two MACs per value at inference (scale and shift); the running statistics are
        // stored with the parameters.
        let mut c = LayerCost::dense(
            [&self.weight, &self.bias],
            2 * input.iter().product::<usize>() as u64,
        );
        c.storage_bits += 64 * self.channels() as u64;
        Ok(c)
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        vec![("weight", &self.weight), ("bias", &self.bias)]
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        vec![("weight", &mut self.weight), ("bias", &mut self.bias)]
    }

    fn buffers(&self) -> Vec<(&'static str, &ArrayD<f32>)> {
        vec![("running_mean", &self.running_mean), ("running_var", &self.running_var)]
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut ArrayD<f32>)> {
        vec![("running_mean", &mut self.running_mean), ("running_var", &mut self.running_var)]
    }

    layer_boilerplate!();
}
