//! Weight sharing (Han, Mao and Dally, "Deep Compression", 2015, arXiv 1510.00149,
//! sec. 3): cluster each layer's weights, store a b-bit index per weight into a codebook
//! of `2^b` f32 centroids, and fine-tune the centroids with summed gradients.
//!
//! - [`KMeans`] (Lloyd, three initialisations) and [`kmeans_exact`] (the optimum, by a penalised search or the DP);
//! - [`SharedWeights`]: the training constraint that ties weights to their centroid;
//! - [`WeightSharing`]: the pass that clusters selected layers and attaches it;
//! - [`SharedTensor`]: the frozen inference encoding, built by [`freeze`].

mod codebook;
mod kmeans;
mod kmeans_exact;
mod pass;
mod penalized;
mod shared_tensor;
mod sorted;

pub use codebook::SharedWeights;
pub use kmeans::{Clustering, Init, KMeans, Method};
pub use kmeans_exact::kmeans_exact;
pub use pass::{WeightSharing, freeze};
pub use shared_tensor::SharedTensor;
