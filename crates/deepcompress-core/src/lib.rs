//! Core of [deepcompress](https://docs.rs/deepcompress): storage-aware weight tensors,
//! layers with forward and backward passes, a model tree addressed by PyTorch-style
//! paths, training, data loading, safetensors I/O, linear algebra, and the [`pass::Pass`]
//! trait every compression technique implements.
//!
//! ```
//! use deepcompress_core::data::Mnist;
//! use deepcompress_core::models::lenet_300_100;
//! use deepcompress_core::train::{evaluate, Adam, TrainConfig, Trainer};
//!
//! let mnist = Mnist::embedded()?;
//! let train = mnist.train.take(512);
//! let mut model = lenet_300_100(0);
//! let cfg = TrainConfig { epochs: 2, batch_size: 64, ..TrainConfig::default() };
//! Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {})?;
//! let eval = evaluate(&mut model, &mnist.test.take(500), 250)?;
//! assert!(eval.accuracy > 0.6);
//! # Ok::<(), deepcompress_core::CoreError>(())
//! ```
#![deny(missing_docs)]

pub mod data;
pub mod error;
pub mod io;
pub mod layer;
pub mod linalg;
pub mod model;
pub mod models;
pub mod ops;
pub mod param;
pub mod pass;
pub mod tensor;
pub mod train;

pub use error::{CoreError, Result, ensure_finite};
pub use layer::{Layer, Mode};
pub use model::{Model, Selector};
pub use param::{Constraint, Param};
pub use tensor::{DenseTensor, Tensor};
