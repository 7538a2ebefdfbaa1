//! Lloyd's k-means in one dimension, with the three initialisations Deep Compression
//! compares.
//!
//! Han, Mao and Dally, "Deep Compression" (2015, arXiv 1510.00149), sec. 3.1 cluster each
//! layer's weights with k-means and find linear initialisation best, because it keeps
//! centroids on the rare large weights that matter most. One dimension makes Lloyd cheap:
//! after one sort every cluster is a run of the sorted data, the assignment step is `k`
//! binary searches of the midpoints between sorted centroids, and the update step is `k`
//! prefix-sum lookups, so an iteration costs O(k log n) instead of O(n k).

use super::sorted::Sorted;
use crate::{PruneError, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// How Lloyd's algorithm places its first centroids (Han et al. 2015, arXiv 1510.00149,
/// sec. 3.1 and fig. 4).
///
/// ```
/// use deepcompress_prune::sharing::{Init, KMeans};
/// let data = [0.0f32, 0.1, 0.2, 5.0];
/// for init in [Init::Linear, Init::Density, Init::Random { seed: 7 }] {
///     let c = KMeans::new(2).with_init(init).fit(&data).unwrap();
///     assert_eq!(c.labels, vec![0, 0, 0, 1]);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// `k` points evenly spaced between the smallest and the largest value: the paper's
    /// best, since large weights keep centroids of their own.
    Linear,
    /// The values at the `k` evenly spaced levels `(2j + 1) / 2k` of the empirical CDF:
    /// centroids crowd where the weights are dense (around zero).
    Density,
    /// `k` distinct values drawn uniformly without replacement, seeded (ChaCha8).
    Random {
        /// Seed of the draw.
        seed: u64,
    },
}

/// Which 1-D k-means a weight-sharing step runs.
///
/// ```
/// use deepcompress_prune::sharing::{Init, Method};
/// let data = [0.0f32, 0.1, 1.0, 1.1];
/// let lloyd = Method::Lloyd(Init::Linear).cluster(&data, 2).unwrap();
/// let exact = Method::Exact.cluster(&data, 2).unwrap();
/// assert_eq!(lloyd.labels, exact.labels);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Lloyd's algorithm from the given initialisation, with [`KMeans`]'s defaults (Lloyd
    /// 1982; Han et al. 2015, arXiv 1510.00149, sec. 3.1).
    Lloyd(Init),
    /// The optimal clustering by dynamic programming (Wang and Song 2011), see
    /// [`kmeans_exact`](super::kmeans_exact).
    Exact,
}

impl Method {
    /// Clusters `data` into at most `k` clusters.
    pub fn cluster(&self, data: &[f32], k: usize) -> Result<Clustering> {
        match *self {
            Method::Lloyd(init) => KMeans::new(k).with_init(init).fit(data),
            Method::Exact => super::kmeans_exact(data, k),
        }
    }
}

/// The result of a 1-D k-means: codebook, one label per value, squared error.
///
/// ```
/// use deepcompress_prune::sharing::KMeans;
/// let c = KMeans::new(2).fit(&[1.0, 1.0, 3.0, 3.0, 9.0]).unwrap();
/// assert_eq!(c.codebook, vec![2.0, 9.0]);
/// assert_eq!(c.labels, vec![0, 0, 0, 0, 1]);
/// assert_eq!(c.sse, 4.0);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Centroids in ascending order (fewer than `k` when the data has fewer than `k`
    /// distinct values).
    pub codebook: Vec<f32>,
    /// For each input value, in input order, the index of its centroid.
    pub labels: Vec<u32>,
    /// Sum of squared distances of the values to their cluster means, in f64.
    pub sse: f64,
    /// Lloyd iterations run (0 for the exact solver).
    pub iterations: usize,
}

/// Lloyd's k-means for 1-D data (Lloyd 1982; as used for weight sharing by Han et al.
/// 2015, arXiv 1510.00149, sec. 3.1). Use it for speed; use
/// [`kmeans_exact`](super::kmeans_exact) when the optimum matters.
///
/// Deterministic: the data are sorted once (ties by input position), values exactly at a
/// midpoint between two centroids go to the lower one, and an empty cluster is re-seeded
/// at the value farthest from its centroid (the first such value in sorted order), one
/// cluster at a time; if that fails to fill it (degenerate data), the empty centroid is
/// dropped. With fewer distinct values than `k` the codebook has one entry per distinct
/// value. It stops when the assignment no longer changes, when no centroid moved more
/// than `tol` times the data range, or after `max_iter` iterations.
///
/// ```
/// use deepcompress_prune::sharing::{Init, KMeans};
/// let data: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0).collect();
/// let c = KMeans::new(8).with_init(Init::Density).max_iter(50).fit(&data).unwrap();
/// assert_eq!(c.codebook.len(), 8);
/// assert!(c.codebook.windows(2).all(|w| w[0] <= w[1]));
/// assert!(KMeans::new(0).fit(&data).is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct KMeans {
    k: usize,
    init: Init,
    max_iter: usize,
    tol: f64,
}

impl KMeans {
    /// `k` clusters, linear initialisation, at most 300 iterations, tolerance 1e-9.
    pub fn new(k: usize) -> Self {
        Self { k, init: Init::Linear, max_iter: 300, tol: 1e-9 }
    }

    /// Sets the initialisation.
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Sets the iteration limit (at least 1).
    pub fn max_iter(mut self, max_iter: usize) -> Self {
        self.max_iter = max_iter;
        self
    }

    /// Sets the stopping tolerance on centroid moves, relative to the data range.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = tol;
        self
    }

    /// Checks the hyper-parameters.
    pub fn check(&self) -> Result<()> {
        if self.k == 0 {
            return Err(PruneError::param("k", 0, "k-means needs at least one cluster"));
        }
        if self.max_iter == 0 {
            return Err(PruneError::param("max_iter", 0, "must be at least 1"));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(PruneError::param("tol", self.tol, "must be finite and >= 0"));
        }
        Ok(())
    }

    /// Clusters `data` (finite, non-empty).
    pub fn fit(&self, data: &[f32]) -> Result<Clustering> {
        self.check()?;
        Ok(self.fit_sorted(&Sorted::new(data)?))
    }

    pub(crate) fn fit_sorted(&self, s: &Sorted) -> Clustering {
        let k = self.k.min(s.distinct);
        let n = s.len();
        let range = s.x[n - 1] - s.x[0];
        let mut c = self.initial(s, k);
        let mut ends = vec![0usize; k];
        let mut prev: Vec<usize> = Vec::new();
        let mut iterations = 0;
        while iterations < self.max_iter {
            iterations += 1;
            assign_nonempty(s, &mut c, &mut ends);
            let mut moved = 0.0f64;
            let mut start = 0;
            for (cj, &end) in c.iter_mut().zip(&ends) {
                let m = s.mean(start, end);
                moved = moved.max((m - *cj).abs());
                *cj = m;
                start = end;
            }
            if ends == prev || moved <= self.tol * range {
                break;
            }
            prev.clone_from(&ends);
        }
        // A last assignment step, so that labels are the nearest centroids.
        assign_nonempty(s, &mut c, &mut ends);
        s.finish(&ends, iterations)
    }

    /// Initial centroids (shifted like the sorted data), ascending.
    fn initial(&self, s: &Sorted, k: usize) -> Vec<f64> {
        let n = s.len();
        let (lo, hi) = (s.x[0], s.x[n - 1]);
        let mut c: Vec<f64> = match self.init {
            _ if k == 1 => vec![s.mean(0, n)],
            Init::Linear => (0..k).map(|j| lo + (hi - lo) * j as f64 / (k - 1) as f64).collect(),
            Init::Density => (0..k)
                .map(|j| s.x[(((2 * j + 1) as f64 / (2 * k) as f64) * n as f64) as usize])
                .collect(),
            Init::Random { seed } => {
                let mut uniq = Vec::with_capacity(s.distinct);
                for (t, &v) in s.x.iter().enumerate() {
                    if t == 0 || v != s.x[t - 1] {
                        uniq.push(v);
                    }
                }
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rand::seq::index::sample(&mut rng, uniq.len(), k).iter().map(|t| uniq[t]).collect()
            }
        };
        c.sort_by(f64::total_cmp);
        c
    }
}

/// Run ends of the nearest-centroid assignment: value `x` joins centroid `j` when it lies
/// in `(mid(j-1, j), mid(j, j+1)]`.
fn assign(s: &Sorted, c: &[f64], ends: &mut [usize]) {
    let k = c.len();
    for j in 0..k - 1 {
        let mid = 0.5 * (c[j] + c[j + 1]);
        ends[j] = s.x.partition_point(|&v| v <= mid);
    }
    ends[k - 1] = s.len();
}

/// [`assign`], then re-seeds empty clusters (see [`KMeans`]); drops the centroids it
/// cannot fill, shrinking `c` and `ends`.
fn assign_nonempty(s: &Sorted, c: &mut Vec<f64>, ends: &mut Vec<usize>) {
    ends.resize(c.len(), 0);
    assign(s, c, ends);
    for _ in 0..2 * c.len() {
        let Some(empty) = first_empty(ends) else { return };
        // The value with the largest error is an end of some run: look only at those.
        let (mut best, mut at) = (-1.0f64, 0usize);
        let mut start = 0;
        for (j, &end) in ends.iter().enumerate() {
            if end > start {
                for t in [start, end - 1] {
                    let e = (s.x[t] - c[j]).abs();
                    if e > best {
                        (best, at) = (e, t);
                    }
                }
            }
            start = end;
        }
        if best <= 0.0 {
            break;
        }
        c[empty] = s.x[at];
        c.sort_by(f64::total_cmp);
        assign(s, c, ends);
    }
    while let Some(empty) = first_empty(ends) {
        c.remove(empty);
        ends.remove(empty);
        assign(s, c, ends);
    }
}

fn first_empty(ends: &[usize]) -> Option<usize> {
    let mut start = 0;
    for (j, &end) in ends.iter().enumerate() {
        if end == start {
            return Some(j);
        }
        start = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_cluster_is_reseeded_deterministically() {
        // Linear init puts centroids at 0, 50, 100: the middle one attracts nothing.
        let data = [0.0f32, 1.0, 2.0, 98.0, 99.0, 100.0, 3.0];
        let c = KMeans::new(3).max_iter(1).fit(&data).unwrap();
        assert_eq!(c.codebook.len(), 3);
        let again = KMeans::new(3).max_iter(1).fit(&data).unwrap();
        assert_eq!(c, again);
        let mut counts = [0; 3];
        c.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(counts.iter().all(|&n| n > 0), "{counts:?}");
    }

    #[test]
    fn fewer_distinct_values_than_k() {
        let c = KMeans::new(5).fit(&[2.0, 2.0, -1.0, 2.0]).unwrap();
        assert_eq!(c.codebook, vec![-1.0, 2.0]);
        assert_eq!(c.labels, vec![1, 1, 0, 1]);
        assert_eq!(c.sse, 0.0);
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(KMeans::new(2).max_iter(0).fit(&[1.0]).is_err());
        assert!(KMeans::new(2).tol(f64::NAN).fit(&[1.0]).is_err());
        assert!(KMeans::new(2).fit(&[]).is_err());
        assert!(KMeans::new(2).fit(&[f32::INFINITY]).is_err());
    }

    #[test]
    fn random_init_depends_on_the_seed_only() {
        let data: Vec<f32> = (0..500).map(|i| ((i * 7919) % 1000) as f32).collect();
        let a = KMeans::new(6).with_init(Init::Random { seed: 1 }).max_iter(1).fit(&data);
        let b = KMeans::new(6).with_init(Init::Random { seed: 1 }).max_iter(1).fit(&data);
        assert_eq!(a.unwrap(), b.unwrap());
    }
}
