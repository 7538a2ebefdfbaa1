//! Datasets: the IDX file format, MNIST, and an in-memory labelled [`Dataset`].
//!
//! ```
//! use deepcompress_core::data::Mnist;
//! let mnist = Mnist::embedded()?;
//! let (x, y) = mnist.train.batch(&[0, 1, 2, 3]);
//! assert_eq!(x.shape(), &[4, 1, 28, 28]);
//! assert!(y.iter().all(|&l| l < 10));
//! # Ok::<(), deepcompress_core::CoreError>(())
//! ```

mod dataset;
mod idx;
mod mnist;

pub use dataset::Dataset;
pub use idx::{IdxArray, MAX_DIMS, read_idx_bytes, read_idx_file};
pub use mnist::{MNIST_MEAN, MNIST_STD, Mnist, NUM_CLASSES};

#[cfg(test)]
mod tests;
