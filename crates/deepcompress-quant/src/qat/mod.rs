//! Quantization-aware training: weight fake quantization with the straight-through
//! estimator ([`FakeQuant`]), learned step sizes ([`LsqWeight`], [`LsqActivation`]; Esser
//! et al. 2019, arXiv 1902.08153), learned activation clipping ([`Pact`]; Choi et al.
//! 2018, arXiv 1805.06085), and the passes [`PrepareQat`], [`CalibrateActivations`] and
//! [`ConvertQat`].

mod calibrate;
pub(crate) mod convert;
mod fake_quant;
mod lsq;
mod lsq_weight;
mod pact;
mod pass;
mod positive;

pub use calibrate::CalibrateActivations;
pub use fake_quant::FakeQuant;
pub use lsq::LsqActivation;
pub use lsq_weight::LsqWeight;
pub use pact::Pact;
pub use pass::{ActQat, ConvertQat, PrepareQat, WeightQat};
pub use positive::PositiveScalar;
