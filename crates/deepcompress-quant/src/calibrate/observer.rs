//! [`Observer`]: collects activation statistics and turns them into a clipping range.

use super::histogram::Histogram;
use super::qparams::ActQuant;
use super::search;
use crate::error::{QuantError, Result};
use ndarray::ArrayViewD;
use serde::Serialize;

/// How an observer picks the clipping range of an activation.
///
/// * `MinMax`: the full observed range. No value is clipped; one outlier widens the step
///   for everything else.
/// * `MovingAverage`: the min and max of each batch, averaged with `momentum` (as in
///   TF-Lite and PyTorch QAT): less sensitive to a single unusual batch.
/// * `Percentile`: the central `percent` of the values (McKinley et al. / NVIDIA's
///   TensorRT percentile calibration); 99.99 is a common choice.
/// * `Mse`: the shrink of the observed range with the least expected squared error,
///   counting rounding noise inside and clipping error outside (Banner et al. 2019,
///   arXiv 1810.05723, which derives the trade-off analytically).
/// * `Kl`: entropy calibration (Migacz, "8-bit inference with TensorRT", GTC 2017): the
///   threshold whose quantized distribution has the least KL divergence to the original.
///
/// Use `MinMax` for well-behaved activations, `Percentile`, `Mse` or `Kl` when a few
/// outliers stretch the range; the example `quantization` compares them on LeNet-5.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Calibration {
    /// Observed minimum and maximum.
    MinMax,
    /// Exponential moving average of per-batch minima and maxima.
    MovingAverage {
        /// Weight of the running value, in `[0, 1)` (0.9 in TF-Lite).
        momentum: f32,
    },
    /// The range holding the central `percent` of the values.
    Percentile {
        /// In `(50, 100]`.
        percent: f32,
    },
    /// Least expected squared quantization error.
    Mse,
    /// Least KL divergence (entropy calibration).
    Kl,
}

impl Calibration {
    /// Checks the method's parameter.
    pub fn check(&self) -> Result<()> {
        match *self {
            Calibration::MovingAverage { momentum } if !(0.0..1.0).contains(&momentum) => {
                Err(QuantError::param("momentum", momentum, "must be in [0, 1)"))
            }
            Calibration::Percentile { percent } if !(percent > 50.0 && percent <= 100.0) => {
                Err(QuantError::param("percent", percent, "must be in (50, 100]"))
            }
            _ => Ok(()),
        }
    }
}

/// Statistics of one activation tensor across calibration batches.
///
/// ```
/// use deepcompress_quant::{Calibration, Observer};
/// use ndarray::Array1;
///
/// // 10,000 values in [0, 1) and one outlier at 100.
/// let mut x: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
/// x.push(100.0);
/// let x = Array1::from(x).into_dyn();
/// let mut minmax = Observer::new(Calibration::MinMax, 8)?;
/// let mut pct = Observer::new(Calibration::Percentile { percent: 99.9 }, 8)?;
/// minmax.observe(x.view())?;
/// pct.observe(x.view())?;
/// assert_eq!(minmax.range()?, (0.0, 100.0));
/// assert!(pct.range()?.1 < 1.1); // the outlier is clipped
/// assert!(Observer::new(Calibration::Kl, 8)?.range().is_err()); // nothing observed
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Observer {
    method: Calibration,
    bits: u8,
    min: f32,
    max: f32,
    average: Option<(f32, f32)>,
    histogram: Histogram,
}

impl Observer {
    /// An empty observer for `bits`-bit codes (2 to 8).
    pub fn new(method: Calibration, bits: u8) -> Result<Self> {
        method.check()?;
        ActQuant::from_range(0.0, 0.0, bits)?;
        Ok(Self {
            method,
            bits,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            average: None,
            histogram: Histogram::new(),
        })
    }

    /// The method.
    pub fn method(&self) -> Calibration {
        self.method
    }

    /// Adds one batch. NaN or infinity is refused and leaves the observer unchanged; an
    /// empty batch is ignored.
    pub fn observe(&mut self, x: ArrayViewD<f32>) -> Result<()> {
        if x.iter().any(|v| !v.is_finite()) {
            return Err(QuantError::NonFinite { what: "calibration activations".into() });
        }
        if x.is_empty() {
            return Ok(());
        }
        let (lo, hi) =
            x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        if let Calibration::MovingAverage { momentum } = self.method {
            self.average = Some(match self.average {
                None => (lo, hi),
                Some((a, b)) => {
                    (momentum * a + (1.0 - momentum) * lo, momentum * b + (1.0 - momentum) * hi)
                }
            });
        }
        if matches!(
            self.method,
            Calibration::Percentile { .. } | Calibration::Mse | Calibration::Kl
        ) {
            self.histogram.add(x.iter().copied());
        }
        Ok(())
    }

    /// Number of values observed so far (histogram methods) or whether any were.
    fn seen(&self) -> bool {
        self.min <= self.max
    }

    /// The chosen clipping range (it contains 0). An observer that saw no values returns
    /// an error: there is nothing to calibrate from.
    pub fn range(&self) -> Result<(f32, f32)> {
        if !self.seen() {
            return Err(QuantError::param(
                "calibration data",
                "empty",
                "the observer saw no activations",
            ));
        }
        let observed = (self.min.min(0.0), self.max.max(0.0));
        let range = match self.method {
            Calibration::MinMax => observed,
            Calibration::MovingAverage { .. } => {
                let (a, b) = self.average.unwrap_or(observed);
                (a.min(0.0), b.max(0.0))
            }
            Calibration::Percentile { percent } => {
                search::percentile(&self.histogram, percent as f64, observed)
            }
            Calibration::Mse => search::mse(&self.histogram, self.bits, observed),
            Calibration::Kl => search::kl(&self.histogram, self.bits, observed),
        };
        Ok(range)
    }

    /// Quantization parameters for the chosen range.
    pub fn qparams(&self) -> Result<ActQuant> {
        let (lo, hi) = self.range()?;
        ActQuant::from_range(lo, hi, self.bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    fn heavy_tailed() -> ndarray::ArrayD<f32> {
        // Laplace(0, 1) by the inverse CDF on a regular grid: a long tail, where clipping
        // pays off at low bit widths (Banner et al.: the best 4-bit clip is about 5 b).
        let n = 20_000;
        Array1::from_shape_fn(n, |i| {
            let u = (i as f32 + 0.5) / n as f32;
            if u < 0.5 { (2.0 * u).ln() } else { -(2.0 * (1.0 - u)).ln() }
        })
        .into_dyn()
    }

    fn mse_of(q: &ActQuant, x: &ndarray::ArrayD<f32>) -> f64 {
        x.iter().map(|&v| ((v - q.fake(v)) as f64).powi(2)).sum::<f64>() / x.len() as f64
    }

    #[test]
    fn clipping_methods_beat_min_max_on_heavy_tails() {
        let x = heavy_tailed();
        let err = |m| {
            let mut o = Observer::new(m, 4).unwrap();
            o.observe(x.view()).unwrap();
            mse_of(&o.qparams().unwrap(), &x)
        };
        let minmax = err(Calibration::MinMax);
        for m in [Calibration::Mse, Calibration::Percentile { percent: 99.9 }, Calibration::Kl] {
            assert!(err(m) < minmax, "{m:?}: {} vs min-max {minmax}", err(m));
        }
    }

    #[test]
    fn kl_does_not_collapse_on_a_spike_at_low_bits() {
        // ReLU outputs: half exact zeros, half a heavy tail. Smearing the zeros over a
        // chunk drew the KL threshold down to a few bins at 3 bits (1.5 % of the range,
        // 11x min-max's squared error); now KL lands near the MSE-optimal clip.
        let tail = heavy_tailed().mapv(f32::abs);
        let zeros = ndarray::ArrayD::zeros(tail.shape());
        let x = ndarray::concatenate![ndarray::Axis(0), tail, zeros];
        for bits in [3u8, 4, 8] {
            let err = |m| {
                let mut o = Observer::new(m, bits).unwrap();
                o.observe(x.view()).unwrap();
                (o.range().unwrap().1, mse_of(&o.qparams().unwrap(), &x))
            };
            let (max, minmax) = err(Calibration::MinMax);
            let (_, best) = err(Calibration::Mse);
            let (hi, kl) = err(Calibration::Kl);
            assert!(
                hi >= max / 16.0 && kl <= minmax && kl < 1.5 * best,
                "{bits} bits: KL clips at {hi} of {max}: error {kl}, min-max {minmax}, MSE {best}"
            );
        }
    }

    #[test]
    fn moving_average_follows_batches() {
        let mut o = Observer::new(Calibration::MovingAverage { momentum: 0.5 }, 8).unwrap();
        o.observe(Array1::from(vec![0.0_f32, 4.0]).into_dyn().view()).unwrap();
        o.observe(Array1::from(vec![0.0_f32, 2.0]).into_dyn().view()).unwrap();
        assert_eq!(o.range().unwrap(), (0.0, 3.0));
    }

    #[test]
    fn bad_input_is_refused_and_zeros_are_exact() {
        assert!(Observer::new(Calibration::Percentile { percent: 40.0 }, 8).is_err());
        assert!(Observer::new(Calibration::MovingAverage { momentum: 1.0 }, 8).is_err());
        assert!(Observer::new(Calibration::MinMax, 9).is_err());
        let mut o = Observer::new(Calibration::Kl, 8).unwrap();
        let nan = Array1::from(vec![f32::NAN]).into_dyn();
        assert!(o.observe(nan.view()).is_err());
        assert!(o.range().is_err());
        o.observe(Array1::<f32>::zeros(10).into_dyn().view()).unwrap();
        let q = o.qparams().unwrap();
        assert_eq!(q.fake(0.0), 0.0);
    }
}
