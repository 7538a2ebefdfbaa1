//! Seeded k-means (k-means++ initialisation, then Lloyd iterations) on the rows of a
//! small matrix: the codebook learner of product quantization.

use ndarray::{Array2, ArrayView1, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Centroids `[min(k, n), d]` and the centroid index of each of the `n` points (rows of
/// `points`, `[n, d]`). The same seed gives the same bits; nothing here depends on the
/// thread count (the caller parallelises over independent subspaces).
pub(crate) fn kmeans(
    points: ArrayView2<f32>,
    k: usize,
    iterations: usize,
    seed: u64,
) -> (Array2<f32>, Vec<usize>) {
    let (n, d) = points.dim();
    let k = k.min(n).max(1);
    let mut centroids = plus_plus(points, k, seed);
    let mut assign = vec![usize::MAX; n];
    for _ in 0..iterations {
        let mut changed = false;
        for (i, a) in assign.iter_mut().enumerate() {
            let best = nearest(points.row(i), &centroids);
            if best != *a {
                *a = best;
                changed = true;
            }
        }
        if !changed {
            break;
        }
        let mut sums = Array2::<f64>::zeros((k, d));
        let mut counts = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            counts[a] += 1;
            for (s, &v) in sums.row_mut(a).iter_mut().zip(points.row(i)) {
                *s += f64::from(v);
            }
        }
        for c in 0..k {
            // An empty cluster keeps its centroid.
            if counts[c] > 0 {
                for (dst, &s) in centroids.row_mut(c).iter_mut().zip(sums.row(c)) {
                    *dst = (s / counts[c] as f64) as f32;
                }
            }
        }
    }
    // The final assignment is to the final centroids.
    for (i, a) in assign.iter_mut().enumerate() {
        *a = nearest(points.row(i), &centroids);
    }
    (centroids, assign)
}

/// Arthur and Vassilvitskii's k-means++ seeding (2007): each next centroid is a point
/// drawn with probability proportional to its squared distance to the nearest centroid.
fn plus_plus(points: ArrayView2<f32>, k: usize, seed: u64) -> Array2<f32> {
    let (n, d) = points.dim();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut centroids = Array2::<f32>::zeros((k, d));
    let first = rng.random_range(0..n);
    centroids.row_mut(0).assign(&points.row(first));
    let mut dist: Vec<f64> = (0..n).map(|i| sq_dist(points.row(i), points.row(first))).collect();
    for c in 1..k {
        let total: f64 = dist.iter().sum();
        let pick = if total > 0.0 {
            let target = rng.random::<f64>() * total;
            let mut acc = 0.0;
            dist.iter()
                .position(|&x| {
                    acc += x;
                    acc > target
                })
                .unwrap_or_else(|| dist.iter().rposition(|&x| x > 0.0).unwrap_or(n - 1))
        } else {
            // Every point sits on a centroid already: duplicates are harmless.
            rng.random_range(0..n)
        };
        centroids.row_mut(c).assign(&points.row(pick));
        for (i, x) in dist.iter_mut().enumerate() {
            *x = x.min(sq_dist(points.row(i), points.row(pick)));
        }
    }
    centroids
}

fn sq_dist(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| f64::from(x - y).powi(2)).sum()
}

/// Index of the nearest centroid (the lowest index on ties).
fn nearest(p: ArrayView1<f32>, centroids: &Array2<f32>) -> usize {
    let mut best = (0, f64::INFINITY);
    for (c, row) in centroids.rows().into_iter().enumerate() {
        let dd = sq_dist(p, row);
        if dd < best.1 {
            best = (c, dd);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separated_clusters_are_found_and_seeds_repeat() {
        let p = Array2::from_shape_fn((60, 2), |(i, j)| {
            (i / 20) as f32 * 10.0 + ((i * 7 + j) % 5) as f32 * 0.1
        });
        let (c, a) = kmeans(p.view(), 3, 20, 7);
        for g in 0..3 {
            assert!(a[g * 20..(g + 1) * 20].iter().all(|&x| x == a[g * 20]));
        }
        assert_eq!(c.nrows(), 3);
        assert_eq!(kmeans(p.view(), 3, 20, 7), (c, a));
        // More centroids than points: one per point, exact.
        let (c, a) = kmeans(p.view().slice_move(ndarray::s![..4, ..]), 16, 5, 0);
        assert_eq!(c.nrows(), 4);
        assert!((0..4).all(|i| c.row(a[i]) == p.row(i)));
    }
}
