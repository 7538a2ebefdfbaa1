//! Entropy coding and the compressed-model file format.
//!
//! The last two stages of Deep Compression (Han, Mao and Dally, 2015, arXiv 1510.00149):
//! after pruning (sparse positions) and weight sharing (codebook indices), the index
//! streams are Huffman-coded ([`huffman`]) and everything is written into one
//! checksummed file ([`container`]) whose size is exactly what the size report prints.
//!
//! ```
//! use deepcompress_prune::coding::{Container, Encoding, Record, SymbolStream, Values};
//!
//! // Codebook indices of a shared layer, mostly the cluster near zero.
//! let indices: Vec<u32> = (0..4096).map(|i| if i % 9 == 0 { (i % 16) as u32 } else { 7 }).collect();
//! let record = Record {
//!     path: "fc1.weight".into(),
//!     shape: vec![64, 64],
//!     encoding: Encoding::Encoded {
//!         positions: None,
//!         values: Values::Indexed {
//!             codebook: (0..16).map(|k| k as f32 / 8.0 - 1.0).collect(),
//!             indices: SymbolStream::smallest(4, indices).unwrap(),
//!         },
//!     },
//! };
//! let size = record.size();
//! assert!(size.bits_per_value() < 4.0); // Huffman beats the 4-bit fixed width
//! let c = Container { records: vec![record] };
//! assert_eq!(Container::from_bytes(&c.to_bytes()).unwrap(), c);
//! ```

pub mod container;
mod encode_pass;
pub mod huffman;
mod model_file;
pub mod varint;

pub use container::{Coding, Container, Encoding, Record, RecordSize, SymbolStream, Values};
pub use encode_pass::EntropyCode;
pub use huffman::HuffmanCode;
pub use model_file::{EncodeOptions, decode_model, encode_model, record_sizes};
