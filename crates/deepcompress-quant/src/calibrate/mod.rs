//! Calibration of activation ranges for static quantization: observers that watch
//! activations on calibration data and choose where to clip.

mod histogram;
mod observer;
mod qparams;
mod search;

pub use observer::{Calibration, Observer};
pub use qparams::ActQuant;
