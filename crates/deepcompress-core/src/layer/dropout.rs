//! Inverted dropout with its own seeded random stream.

use super::{Layer, Mode, init, layer_boilerplate, no_cache};
use crate::{CoreError, Result};
use ndarray::{ArrayD, Zip};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Zeroes each value with probability `p` in training and scales the rest by `1/(1-p)`;
/// the identity in eval mode. The mask stream is seeded, so runs repeat bit for bit.
///
/// ```
/// use deepcompress_core::layer::{Dropout, Layer, Mode};
/// use ndarray::ArrayD;
/// let mut d = Dropout::new(0.5, 1).unwrap();
/// let y = d.forward(ArrayD::<f32>::ones(vec![1000]), Mode::Train).unwrap();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0));
/// assert_eq!(d.forward(ArrayD::ones(vec![3]), Mode::Eval).unwrap(), ArrayD::<f32>::ones(vec![3]));
/// assert!(Dropout::new(1.0, 0).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct Dropout {
    p: f32,
    rng: ChaCha8Rng,
    mask: Option<ArrayD<f32>>,
}

impl Dropout {
    /// Drop probability `p` in `[0, 1)`.
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(CoreError::param("Dropout p", p, "must be in [0, 1)"));
        }
        Ok(Self { p, rng: init::rng(seed), mask: None })
    }

    /// The drop probability.
    pub fn p(&self) -> f32 {
        self.p
    }
}

impl Layer for Dropout {
    fn kind(&self) -> &'static str {
        "Dropout"
    }
    fn forward(&mut self, mut x: ArrayD<f32>, mode: Mode) -> Result<ArrayD<f32>> {
        if mode == Mode::Eval || self.p == 0.0 {
            self.mask = (mode == Mode::Train).then(|| ArrayD::ones(x.raw_dim()));
            return Ok(x);
        }
        let scale = 1.0 / (1.0 - self.p);
        let p = self.p;
        let rng = &mut self.rng;
        let mask = ArrayD::from_shape_simple_fn(x.raw_dim(), || {
            if rng.random::<f32>() < p { 0.0 } else { scale }
        });
        x *= &mask;
        self.mask = Some(mask);
        Ok(x)
    }
    fn reseed(&mut self, seed: u64) {
        self.rng = init::rng(seed);
    }
    fn backward(
        &mut self,
        mut grad: ArrayD<f32>,
        need_input_grad: bool,
    ) -> Result<Option<ArrayD<f32>>> {
        let mask = self.mask.as_ref().ok_or_else(|| no_cache("Dropout"))?;
        if grad.shape() != mask.shape() {
            return Err(CoreError::shape(
                "Dropout backward",
                format!("{:?}", mask.shape()),
                grad.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        Zip::from(&mut grad).and(mask).for_each(|g, &m| *g *= m);
        Ok(Some(grad))
    }
    fn output_shape(&self, input: &[usize]) -> Result<Vec<usize>> {
        Ok(input.to_vec())
    }
    layer_boilerplate!();
}
