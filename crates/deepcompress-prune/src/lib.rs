//! Parameter pruning and sharing for deepcompress (family 1 of Cheng et al., IEEE SPM 2018).
//!
//! Pruning here shrinks the model for real: a pruned Linear becomes a CSR
//! [`SparseTensor`](sparse::SparseTensor) multiplied by its own kernel, structured pruning
//! removes filters and fixes every dependent layer, weight sharing stores b-bit indices
//! into a codebook, and the container file stores it all Huffman-coded, so that the byte
//! count a report prints is the size of a file that loads back.
//!
//! The three stages of Deep Compression (Han, Mao and Dally 2015, arXiv 1510.00149) as
//! passes; in a real run each is followed by fine-tuning (the facade's
//! `recipes::DeepCompression` does it all):
//!
//! ```
//! use deepcompress_core::model::Selector;
//! use deepcompress_core::pass::{Pass, PassContext};
//! use deepcompress_prune::coding::{Container, EntropyCode, decode_model};
//! use deepcompress_prune::sharing::WeightSharing;
//! use deepcompress_prune::unstructured::{MagnitudePrune, Sparsity};
//!
//! let mut model = deepcompress_core::models::lenet_300_100(0);
//! let mut ctx = PassContext::new(0);
//! MagnitudePrune::new(Selector::all(), Sparsity::Global(0.92)).apply(&mut model, &mut ctx)?;
//! WeightSharing::new(Selector::all()).apply(&mut model, &mut ctx)?;
//! let encode = EntropyCode::default();
//! let bytes = encode.container(&model).map_err(|e| e.into_core("encode"))?.to_bytes();
//! assert!(bytes.len() < 1_066_440 / 30); // f32 LeNet-300-100: 1,066,440 bytes
//! // The file loads back into compressed inference layers (CSR over shared values).
//! let file = Container::from_bytes(&bytes).map_err(|e| e.into_core("read"))?;
//! let loaded = decode_model(&file, &model).map_err(|e| e.into_core("decode"))?;
//! assert_eq!(loaded.layer("fc1")?.encoding(), "csr+shared");
//! # Ok::<(), deepcompress_core::CoreError>(())
//! ```
#![deny(missing_docs)]

pub mod bits;
pub mod coding;
pub mod error;
pub mod hashed;
pub mod mask;
pub mod schedule;
pub mod sensitivity;
pub mod sharing;
pub mod sparse;
pub mod structured;
mod targets;
pub mod unstructured;

pub use error::{PruneError, Result};
pub use mask::Mask;
pub use targets::WeightKind;
