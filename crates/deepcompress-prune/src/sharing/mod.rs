//! Weight sharing (Han, Mao and Dally, "Deep Compression", 2015, arXiv 1510.00149,
//! sec. 3): cluster each layer's weights, store a b-bit index per weight into a codebook
//! of `2^b` f32 centroids, and fine-tune the centroids with summed gradients.
//!
//! - [`KMeans`] (Lloyd, three initialisations) and [`kmeans_exact`] (optimal DP).

mod kmeans;
mod kmeans_exact;
mod sorted;

pub use kmeans::{Clustering, Init, KMeans};
pub use kmeans_exact::kmeans_exact;
