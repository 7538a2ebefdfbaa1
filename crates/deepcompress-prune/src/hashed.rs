//! HashedNets: a fully connected layer whose weights are shared through a hash.
//!
//! Chen, Wilson, Tyree, Weinberger and Chen, "Compressing Neural Networks with the Hashing
//! Trick" (ICML 2015, arXiv 1504.04788). The layer's `out x in` virtual weight matrix is
//! never stored: `V[i][j] = xi(i, j) * w[h(i, j)]` reads one of `K` real parameters
//! through a hash `h` and multiplies it by a sign hash `xi` in {-1, +1} (the sign removes
//! the bias that collisions add to inner products). Storage is the `K` reals and the
//! seed; the hash is recomputed from the seed.

use crate::{PruneError, Result};
use deepcompress_core::layer::{Layer, LayerCost, Mode};
use deepcompress_core::{CoreError, Param, ops};
use ndarray::{Array2, ArrayD, Axis, Ix1, Ix2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::any::Any;

/// Bit 31 of a stored code: the sign hash is -1.
const NEGATIVE: u32 = 1 << 31;

/// SplitMix64's finaliser (Steele, Lea and Flood 2014): a fast, well-mixed 64-bit hash.
/// The paper uses xxHash; any hash with good avalanche behaviour serves.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fully connected layer with HashedNets weight sharing (Chen et al. 2015, arXiv
/// 1504.04788): `y = x Vᵀ + b` with `V[i][j] = xi(i, j) * w[h(i, j)]`, `K` real weights
/// `w` and hashes seeded by `seed`. Use it to train a network that is small from the
/// start (compression `in * out / K`), instead of compressing a trained one.
///
/// Backward sums the gradient of every virtual weight into its bucket with its sign
/// (`dL/dw[k] = sum over h(i,j) = k of xi(i,j) dL/dV[i][j]`). Its cost reports `K`
/// (+ bias) parameters. The kind is `"HashedLinear"`, so passes that handle `Linear`
/// leave it alone.
///
/// ```
/// use deepcompress_core::layer::{Layer, Mode};
/// use deepcompress_prune::hashed::HashedLinear;
/// use ndarray::ArrayD;
/// let mut fc = HashedLinear::new(784, 300, 784 * 300 / 64, true, 0).unwrap();
/// let y = fc.forward(ArrayD::zeros(vec![2, 784]), Mode::Eval).unwrap();
/// assert_eq!(y.shape(), &[2, 300]);
/// let cost = fc.cost(&[1, 784]).unwrap();
/// assert_eq!(cost.params, (784 * 300 / 64 + 300) as u64);
/// assert_eq!(cost.macs, 784 * 300);
/// assert!(HashedLinear::new(2, 2, 5, false, 0).is_err()); // more buckets than weights
/// ```
#[derive(Debug, Clone)]
pub struct HashedLinear {
    /// The `K` real weights, shape `[K]`.
    pub weight: Param,
    /// Optional bias `[out]`.
    pub bias: Option<Param>,
    in_features: usize,
    out_features: usize,
    seed: u64,
    /// Per virtual weight (row-major): bucket index, with [`NEGATIVE`] for the sign.
    codes: Vec<u32>,
    cache: Option<(Array2<f32>, Array2<f32>)>,
}

impl HashedLinear {
    /// A layer with `buckets` real weights (1 to `in * out`, below 2^31) initialised like a
    /// PyTorch Linear (uniform in ±1/√in, so virtual weights have the usual scale), with
    /// hashes and initial values from `seed`.
    pub fn new(
        in_features: usize,
        out_features: usize,
        buckets: usize,
        bias: bool,
        seed: u64,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(PruneError::param(
                "HashedLinear shape",
                format!("[{out_features}, {in_features}]"),
                "needs at least one input and one output",
            ));
        }
        let virtual_len = in_features
            .checked_mul(out_features)
            .filter(|n| *n <= u32::MAX as usize)
            .ok_or_else(|| {
                PruneError::param(
                    "HashedLinear shape",
                    format!("[{out_features}, {in_features}]"),
                    "at most 2^32 - 1 virtual weights",
                )
            })?;
        if buckets == 0 || buckets > virtual_len || buckets >= NEGATIVE as usize {
            return Err(PruneError::param(
                "HashedLinear buckets",
                buckets,
                format!("must be in 1..={} (the virtual weights) and below 2^31", virtual_len),
            ));
        }
        let bucket_seed = mix(seed ^ 0x6A09_E667_F3BC_C908);
        let sign_seed = mix(seed ^ 0xBB67_AE85_84CA_A73B);
        let codes = (0..virtual_len as u64)
            .map(|t| {
                // Multiply-shift maps the 64-bit hash onto 0..buckets without a modulo.
                let h = mix(bucket_seed.wrapping_add(t.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                let b = ((h as u128 * buckets as u128) >> 64) as u32;
                let s = mix(sign_seed.wrapping_add(t.wrapping_mul(0x9E37_79B9_7F4A_7C15))) & 1;
                b | if s == 1 { NEGATIVE } else { 0 }
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = 1.0 / (in_features as f32).sqrt();
        let mut uniform =
            |n: usize| ArrayD::from_shape_fn(vec![n], |_| rng.random_range(-bound..bound));
        let weight = Param::new(uniform(buckets));
        let bias = bias.then(|| Param::new(uniform(out_features)));
        Ok(Self { weight, bias, in_features, out_features, seed, codes, cache: None })
    }

    /// Input features.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Output features.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// Number of real weights `K`.
    pub fn buckets(&self) -> usize {
        self.weight.len()
    }

    /// The hash seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The virtual weight matrix `[out, in]` (Chen et al. 2015, eq. 4).
    pub fn virtual_weight(&self) -> Array2<f32> {
        let w = self.weight.effective();
        let w = w.as_slice_memory_order().expect("parameters are contiguous");
        let v = self.codes.iter().map(|&c| {
            let x = w[(c & !NEGATIVE) as usize];
            if c & NEGATIVE != 0 { -x } else { x }
        });
        Array2::from_shape_vec((self.out_features, self.in_features), v.collect())
            .expect("one code per virtual weight")
    }

    fn check_input(&self, shape: &[usize]) -> deepcompress_core::Result<()> {
        if shape.len() != 2 || shape[1] != self.in_features {
            return Err(CoreError::shape(
                "HashedLinear",
                format!("[batch, {}]", self.in_features),
                shape,
            ));
        }
        Ok(())
    }
}

impl Layer for HashedLinear {
    fn kind(&self) -> &'static str {
        "HashedLinear"
    }

    fn forward(&mut self, x: ArrayD<f32>, mode: Mode) -> deepcompress_core::Result<ArrayD<f32>> {
        self.check_input(x.shape())?;
        let x = x.into_dimensionality::<Ix2>().expect("checked 2-D");
        let v = self.virtual_weight();
        let mut y = ops::matmul_nt(x.view(), v.view());
        if let Some(b) = &self.bias {
            y += &b.value().view().into_dimensionality::<Ix1>().expect("bias is 1-D");
        }
        self.cache = (mode == Mode::Train).then_some((x, v));
        Ok(y.into_dyn())
    }

    fn backward(
        &mut self,
        grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> deepcompress_core::Result<Option<ArrayD<f32>>> {
        let Some((x, v)) = &self.cache else {
            return Err(CoreError::NoForwardCache { layer: "HashedLinear".into() });
        };
        if grad.shape() != [x.nrows(), self.out_features] {
            return Err(CoreError::shape(
                "HashedLinear backward",
                format!("[{}, {}]", x.nrows(), self.out_features),
                grad.shape(),
            ));
        }
        let g = grad.into_dimensionality::<Ix2>().expect("checked 2-D");
        // Gradient of the virtual matrix, then scattered into the buckets with the signs.
        let gv = ops::matmul_tn(g.view(), x.view());
        let gw = self.weight.grad_mut();
        let gw = gw.as_slice_memory_order_mut().expect("parameters are contiguous");
        for (&c, &d) in self.codes.iter().zip(gv.iter()) {
            let k = (c & !NEGATIVE) as usize;
            gw[k] += if c & NEGATIVE != 0 { -d } else { d };
        }
        if let Some(b) = &mut self.bias {
            *b.grad_mut() += &g.sum_axis(Axis(0)).into_dyn();
        }
        Ok(need_input_grad.then(|| ops::matmul(g.view(), v.view()).into_dyn()))
    }

    fn output_shape(&self, input: &[usize]) -> deepcompress_core::Result<Vec<usize>> {
        self.check_input(input)?;
        Ok(vec![input[0], self.out_features])
    }

    fn cost(&self, input: &[usize]) -> deepcompress_core::Result<LayerCost> {
        self.check_input(input)?;
        let macs = (input[0] * self.in_features * self.out_features) as u64;
        Ok(LayerCost::dense(self.params().into_iter().map(|(_, p)| p), macs))
    }

    fn params(&self) -> Vec<(&'static str, &Param)> {
        std::iter::once(("weight", &self.weight))
            .chain(self.bias.as_ref().map(|b| ("bias", b)))
            .collect()
    }

    fn params_mut(&mut self) -> Vec<(&'static str, &mut Param)> {
        std::iter::once(("weight", &mut self.weight))
            .chain(self.bias.as_mut().map(|b| ("bias", b)))
            .collect()
    }

    fn clone_box(&self) -> Box<dyn Layer> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepcompress_core::Model;
    use deepcompress_core::data::Mnist;
    use deepcompress_core::layer::{Relu, Sequential};
    use deepcompress_core::train::{Adam, TrainConfig, Trainer, evaluate};

    /// Loss `sum(y * r)` for a fixed `r`, so that dL/dy = r.
    fn loss(fc: &mut HashedLinear, x: &ArrayD<f32>, r: &ArrayD<f32>) -> f64 {
        let y = fc.forward(x.clone(), Mode::Eval).unwrap();
        y.iter().zip(r).map(|(a, b)| (*a as f64) * (*b as f64)).sum()
    }

    #[test]
    fn finite_difference_gradients() {
        let mut fc = HashedLinear::new(5, 4, 7, true, 11).unwrap();
        let x =
            ArrayD::from_shape_fn(vec![3, 5], |ix| ((ix[0] * 5 + ix[1]) % 7) as f32 * 0.3 - 0.9);
        let r =
            ArrayD::from_shape_fn(vec![3, 4], |ix| ((ix[0] + 2 * ix[1]) % 5) as f32 * 0.4 - 0.8);
        fc.forward(x.clone(), Mode::Train).unwrap();
        let dx = fc.backward(r.clone(), true).unwrap().unwrap();
        let gw = fc.weight.grad().clone();
        let gb = fc.bias.as_ref().unwrap().grad().clone();
        let eps = 1e-2f32;
        for k in 0..7 {
            let mut f = fc.clone();
            f.weight.value_mut()[k] += eps;
            let up = loss(&mut f, &x, &r);
            f.weight.value_mut()[k] -= 2.0 * eps;
            let down = loss(&mut f, &x, &r);
            let num = (up - down) / (2.0 * eps as f64);
            assert!((num - gw[k] as f64).abs() < 1e-3, "w[{k}]: {num} vs {}", gw[k]);
        }
        for o in 0..4 {
            let mut f = fc.clone();
            f.bias.as_mut().unwrap().value_mut()[o] += eps;
            let up = loss(&mut f, &x, &r);
            let num = (up - loss(&mut fc.clone(), &x, &r)) / eps as f64;
            assert!((num - gb[o] as f64).abs() < 1e-3, "b[{o}]");
        }
        for (idx, g) in dx.indexed_iter() {
            let (mut xu, mut xd) = (x.clone(), x.clone());
            xu[&idx] += eps;
            xd[&idx] -= eps;
            let num = (loss(&mut fc.clone(), &xu, &r) - loss(&mut fc.clone(), &xd, &r))
                / (2.0 * eps as f64);
            assert!((num - *g as f64).abs() < 1e-3, "x{idx:?}");
        }
    }

    #[test]
    fn every_virtual_weight_reads_its_bucket_with_a_sign() {
        let fc = HashedLinear::new(40, 30, 50, false, 5).unwrap();
        let w = fc.weight.value();
        let v = fc.virtual_weight();
        assert!(v.iter().all(|x| w.iter().any(|y| *x == *y || *x == -*y)));
        let negative = fc.codes.iter().filter(|c| **c & NEGATIVE != 0).count();
        assert!((500..700).contains(&negative), "{negative} of 1200 signs negative");
        let mut used = [false; 50];
        fc.codes.iter().for_each(|c| used[(c & !NEGATIVE) as usize] = true);
        assert!(used.iter().all(|u| *u));
        let same = HashedLinear::new(40, 30, 50, false, 5).unwrap();
        assert_eq!(same.virtual_weight(), v);
        assert_ne!(HashedLinear::new(40, 30, 50, false, 6).unwrap().codes, fc.codes);
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(HashedLinear::new(0, 3, 1, true, 0).is_err());
        assert!(HashedLinear::new(3, 3, 0, true, 0).is_err());
        let mut fc = HashedLinear::new(3, 2, 4, true, 0).unwrap();
        assert!(fc.forward(ArrayD::zeros(vec![2, 4]), Mode::Train).is_err());
        assert!(fc.backward(ArrayD::zeros(vec![2, 2]), true).is_err());
        fc.forward(ArrayD::zeros(vec![2, 3]), Mode::Train).unwrap();
        assert!(fc.backward(ArrayD::zeros(vec![3, 2]), true).is_err());
    }

    /// A 784-100-10 HashedNet at 1/8 of the weights learns MNIST from 1,000 images.
    #[test]
    fn hashed_mlp_learns_mnist() {
        let mnist = Mnist::embedded().unwrap();
        let train = mnist.train.take(1000).reshape_inputs(&[784]).unwrap();
        let test = mnist.test.take(500).reshape_inputs(&[784]).unwrap();
        let root = Sequential::new()
            .with_named("fc1", HashedLinear::new(784, 100, 784 * 100 / 8, true, 1).unwrap())
            .with_named("relu", Relu::default())
            .with_named("fc2", HashedLinear::new(100, 10, 100 * 10 / 8, true, 2).unwrap());
        let mut model = Model::new(root);
        assert_eq!(model.num_params(), 9800 + 100 + 125 + 10);
        let cfg = TrainConfig { epochs: 8, batch_size: 32, lr: 2e-3, ..TrainConfig::default() };
        Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {}).unwrap();
        let acc = evaluate(&mut model, &test, 250).unwrap().accuracy;
        assert!(acc > 0.8, "test accuracy {acc}");
    }
}
