//! Exact (globally optimal) 1-D k-means by dynamic programming.
//!
//! Wang and Song, "Ckmeans.1d.dp: optimal k-means clustering in one dimension by dynamic
//! programming" (The R Journal 3(2), 2011). On sorted data, `D[m][i]`, the least squared
//! error of the first `i` values in `m` clusters, is `min_j D[m-1][j] + cost(j, i)`, where
//! `cost` (the error of the run `j..i`, O(1) from prefix sums) satisfies the quadrangle
//! inequality. So the best split `J[m][i]` is non-decreasing in `i`, which the
//! divide-and-conquer optimisation exploits (row `mid` first, then each half searches
//! only its side of `J[m][mid]`): O(n log n) per layer, O(k n log n) in all. As in
//! Ckmeans.1d.dp, `J[m-1][i] <= J[m][i]` narrows each search further, and lower bounds
//! skip blocks of candidates that cannot win. Memory: a u32
//! backtrack table of `(k - 2) (n + 1)` entries (120 MB for n = 10^6, k = 32) plus five
//! f64 arrays of `n + 1`.

use super::kmeans::Clustering;
use super::sorted::Sorted;
use crate::{PruneError, Result};

/// Largest `k` accepted (a 16-bit codebook).
const MAX_K: usize = 1 << 16;

/// Rows above this count are split across rayon threads (the result does not depend on
/// the thread count: each row's minimum is computed the same way).
const PARALLEL_ROWS: usize = 1 << 14;

/// Optimal 1-D k-means (Wang and Song 2011, Ckmeans.1d.dp; for weight sharing as in
/// Han et al. 2015, arXiv 1510.00149). The squared error is never above Lloyd's from any
/// initialisation; use it when clustering time is small next to retraining, which it
/// usually is (see `benches/benches/kmeans.rs`).
///
/// `k` must be in `1..=65536`; with fewer distinct values than `k` the codebook has one
/// entry per distinct value. Ties between equally good splits go to the leftmost one, so
/// the result is deterministic.
///
/// ```
/// use deepcompress_prune::sharing::{kmeans_exact, Init, KMeans};
/// let data = [0.0f32, 1.0, 2.0, 10.0, 11.0, 30.0, 31.0, 32.0, 33.0];
/// let exact = kmeans_exact(&data, 3).unwrap();
/// let lloyd = KMeans::new(3).with_init(Init::Density).fit(&data).unwrap();
/// assert!(exact.sse <= lloyd.sse);
/// assert_eq!(exact.codebook, vec![1.0, 10.5, 31.5]);
/// assert_eq!(exact.sse, 7.5);
/// ```
pub fn kmeans_exact(data: &[f32], k: usize) -> Result<Clustering> {
    if !(1..=MAX_K).contains(&k) {
        return Err(PruneError::param("k", k, "exact k-means takes k in 1..=65536"));
    }
    Ok(exact_sorted(&Sorted::new(data)?, k))
}

/// The DP on already sorted data.
pub(crate) fn exact_sorted(s: &Sorted, k: usize) -> Clustering {
    solve_dp(s, k, true)
}

/// The DP; `prune` turns the block bounds of [`Layer::row_min`] on (off only in tests,
/// to check them).
fn solve_dp(s: &Sorted, k: usize, prune: bool) -> Clustering {
    let n = s.len();
    let k = k.min(s.distinct);
    if k == 1 {
        return s.finish(&[n], 0);
    }
    // prev[j] = D[m-1][j]; only j in the layer's feasible range is ever read.
    let mut prev: Vec<f64> =
        (0..=n).map(|i| if i == 0 { f64::INFINITY } else { s.cost(0, i) }).collect();
    let mut cur = vec![f64::INFINITY; n + 1];
    // rinv[t] = 1 / (n + 1 - t): for a fixed row i, 1 / (i - j) is then read forwards in
    // j, a contiguous stream instead of a division per candidate.
    let rinv: Vec<f64> = (0..=n).map(|t| 1.0 / (n + 1 - t) as f64).collect();
    // back[(m - 2) * (n + 1) + i] = J[m][i], the first index of the m-th cluster when the
    // first i values form m clusters, for the inner layers m = 2..k-1.
    let mut back = vec![0u32; (k - 2) * (n + 1)];
    for m in 2..k {
        // The first i values in m clusters leave n - i >= k - m values for the others.
        let (lo, hi) = (m, n - (k - m));
        let (done, rest) = back.split_at_mut((m - 2) * (n + 1));
        let lower = (m > 2).then(|| &done[(m - 3) * (n + 1)..]);
        let layer = Layer { s, prev: &prev, rinv: &rinv, lower, prune };
        layer.solve(lo, hi, m - 1, hi - 1, &mut cur[lo..=hi], &mut rest[lo..=hi]);
        std::mem::swap(&mut prev, &mut cur);
    }
    // Last layer: only i = n is needed.
    let layer = Layer { s, prev: &prev, rinv: &rinv, lower: None, prune };
    let (_, split) = layer.row_min(n, k - 1, n - 1);
    let mut ends = vec![0usize; k];
    ends[k - 1] = n;
    ends[k - 2] = split;
    for m in (2..k).rev() {
        let i = ends[m - 1];
        ends[m - 2] = back[(m - 2) * (n + 1) + i] as usize;
    }
    s.finish(&ends, 0)
}

/// One DP layer: `A[i][j] = D[m-1][j] + cost(j, i)` for `j < i`.
struct Layer<'a> {
    s: &'a Sorted,
    prev: &'a [f64],
    rinv: &'a [f64],
    /// `J[m-1][..]`, a lower bound on this layer's splits (none for m = 2).
    lower: Option<&'a [u32]>,
    /// Whether [`Layer::row_min`] skips blocks by their lower bounds.
    prune: bool,
}

impl Layer<'_> {
    /// Fills rows `ilo..=ihi` (`val`, `arg` hold exactly those rows) knowing that their
    /// best splits lie in `jlo..=jhi`.
    fn solve(
        &self,
        ilo: usize,
        ihi: usize,
        jlo: usize,
        jhi: usize,
        val: &mut [f64],
        arg: &mut [u32],
    ) {
        if ilo > ihi {
            return;
        }
        let mid = ilo + (ihi - ilo) / 2;
        let a = self.lower.map_or(jlo, |l| jlo.max(l[mid] as usize));
        let (best, at) = self.row_min(mid, a, jhi.min(mid - 1));
        let (val_lo, val_rest) = val.split_at_mut(mid - ilo);
        let (arg_lo, arg_rest) = arg.split_at_mut(mid - ilo);
        val_rest[0] = best;
        arg_rest[0] = at as u32;
        let (val_hi, arg_hi) = (&mut val_rest[1..], &mut arg_rest[1..]);
        let left = |v: &mut [f64], g: &mut [u32]| {
            if mid > ilo {
                self.solve(ilo, mid - 1, jlo, at, v, g)
            }
        };
        let right = |v: &mut [f64], g: &mut [u32]| self.solve(mid + 1, ihi, at, jhi, v, g);
        if ihi - ilo > PARALLEL_ROWS {
            rayon::join(|| left(val_lo, arg_lo), || right(val_hi, arg_hi));
        } else {
            left(val_lo, arg_lo);
            right(val_hi, arg_hi);
        }
    }

    /// Leftmost minimum of row `i` over columns `a..=b` (`a <= b < i`).
    ///
    /// Long windows are scanned in blocks of 64 columns, skipping a block `j1..=j2` when
    /// `D[m-1][j1] + cost(j2, i)` already exceeds a known value: `D[m-1]` never decreases
    /// in `j` and `cost(j, i)` never increases, so that sum bounds the whole block from
    /// below (the pruning of Ckmeans.1d.dp, by blocks). Once `D[m-1][j1]` alone exceeds
    /// it, no later column can win.
    fn row_min(&self, i: usize, a: usize, b: usize) -> (f64, usize) {
        const B: usize = 64;
        if !self.prune || b - a < 4 * B {
            return self.scan(i, a, b);
        }
        // A first estimate from a sparse sample, so that the block bounds bite.
        let step = (b - a) / 32;
        let mut best = (f64::INFINITY, usize::MAX);
        let mut j = a;
        while j <= b {
            let d = self.s.s1[i] - self.s.s1[j];
            let v = self.prev[j] + (self.s.s2[i] - self.s.s2[j]) - d * d / (i - j) as f64;
            if v < best.0 {
                best = (v, j);
            }
            j += step;
        }
        let sampled = best.0;
        let mut best = (f64::INFINITY, usize::MAX);
        let mut j1 = a;
        while j1 <= b {
            let j2 = (j1 + B - 1).min(b);
            // A little slack: the sample and the bounds round differently from `scan`.
            let u = sampled.min(best.0);
            let u = u + u.abs() * 1e-12;
            let floor = self.prev[j1];
            if floor > u {
                break;
            }
            if floor + self.s.cost(j2, i) <= u {
                let (v, t) = self.scan(i, j1, j2);
                if v < best.0 {
                    best = (v, t);
                }
            }
            j1 = j2 + 1;
        }
        if best.1 == usize::MAX { self.scan(i, a, b) } else { best }
    }

    /// Leftmost minimum of row `i` over columns `a..=b` (`a <= b < i`), by a full scan.
    ///
    /// Four independent running minima let the compiler vectorise the scan; they are
    /// merged by (value, column), which keeps the leftmost minimum.
    fn scan(&self, i: usize, a: usize, b: usize) -> (f64, usize) {
        const L: usize = 4;
        let s = self.s;
        let (s1i, s2i) = (s.s1[i], s.s2[i]);
        let n = self.rinv.len() - 1;
        let p = &self.prev[a..=b];
        let q1 = &s.s1[a..=b];
        let q2 = &s.s2[a..=b];
        let r = &self.rinv[n + 1 - i + a..=n + 1 - i + b];
        let eval = |t: usize| {
            let d = s1i - q1[t];
            p[t] + (s2i - q2[t]) - d * d * r[t]
        };
        let mut best = [f64::INFINITY; L];
        let mut at = [0usize; L];
        let full = p.len() / L * L;
        let lanes = p[..full].chunks_exact(L).zip(q1.chunks_exact(L));
        for (c, ((p, q1), (q2, r))) in
            lanes.zip(q2.chunks_exact(L).zip(r.chunks_exact(L))).enumerate()
        {
            for l in 0..L {
                let d = s1i - q1[l];
                let v = p[l] + (s2i - q2[l]) - d * d * r[l];
                if v < best[l] {
                    best[l] = v;
                    at[l] = c * L + l;
                }
            }
        }
        let (mut bv, mut bt) = (f64::INFINITY, usize::MAX);
        for l in 0..L {
            if best[l] < bv || (best[l] == bv && at[l] < bt) {
                (bv, bt) = (best[l], at[l]);
            }
        }
        for t in full..p.len() {
            let v = eval(t);
            if v < bv {
                (bv, bt) = (v, t);
            }
        }
        (bv, a + bt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::{Init, KMeans};
    use proptest::prelude::*;

    /// Best squared error over every split of the sorted data into k runs.
    fn brute_force(data: &[f32], k: usize) -> f64 {
        let mut x: Vec<f64> = data.iter().map(|&v| v as f64).collect();
        x.sort_by(f64::total_cmp);
        fn err(x: &[f64]) -> f64 {
            let m = x.iter().sum::<f64>() / x.len() as f64;
            x.iter().map(|v| (v - m) * (v - m)).sum()
        }
        fn go(x: &[f64], k: usize) -> f64 {
            if k == 1 {
                return err(x);
            }
            (1..=x.len() - (k - 1))
                .map(|i| err(&x[..i]) + go(&x[i..], k - 1))
                .fold(f64::INFINITY, f64::min)
        }
        let mut distinct = x.clone();
        distinct.dedup();
        go(&x, k.min(distinct.len()))
    }

    fn slack(data: &[f32]) -> f64 {
        1e-9 * (1.0 + data.iter().map(|&v| (v as f64).powi(2)).sum::<f64>())
    }

    proptest! {
        #[test]
        fn matches_brute_force(data in proptest::collection::vec(-8i32..8, 1..11), k in 1usize..5) {
            let data: Vec<f32> = data.iter().map(|&v| v as f32 * 0.5).collect();
            let c = kmeans_exact(&data, k).unwrap();
            prop_assert!((c.sse - brute_force(&data, k)).abs() <= slack(&data), "{} vs {}", c.sse, brute_force(&data, k));
        }

        #[test]
        fn never_worse_than_lloyd(data in proptest::collection::vec(-100.0f32..100.0, 1..300), k in 1usize..12, seed in 0u64..1000) {
            let exact = kmeans_exact(&data, k).unwrap();
            prop_assert!(exact.codebook.windows(2).all(|w| w[0] <= w[1]));
            for init in [Init::Linear, Init::Density, Init::Random { seed }] {
                let lloyd = KMeans::new(k).with_init(init).fit(&data).unwrap();
                prop_assert!(exact.sse <= lloyd.sse + slack(&data), "{init:?}: {} > {}", exact.sse, lloyd.sse);
            }
        }
    }

    /// Windows long enough for the block bounds: the pruned DP finds the same optimum.
    #[test]
    fn block_pruning_keeps_the_optimum() {
        let mut z = 7u64;
        let data: Vec<f32> = (0..20_000)
            .map(|t| {
                z = z.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let u = (z >> 40) as f32 / (1u64 << 24) as f32;
                if t % 10 == 0 { 3.0 * u - 1.5 } else { (u - 0.5).powi(3) }
            })
            .collect();
        let s = Sorted::new(&data).unwrap();
        for k in [2, 3, 9, 32] {
            let pruned = solve_dp(&s, k, true);
            let full = solve_dp(&s, k, false);
            assert!(
                (pruned.sse - full.sse).abs() <= slack(&data),
                "k={k}: {} vs {}",
                pruned.sse,
                full.sse
            );
            let lloyd = KMeans::new(k).fit(&data).unwrap();
            assert!(pruned.sse <= lloyd.sse + slack(&data), "k={k}");
        }
    }

    #[test]
    fn k_out_of_range_is_an_error() {
        assert!(kmeans_exact(&[1.0], 0).is_err());
        assert!(kmeans_exact(&[1.0], 65537).is_err());
        assert!(kmeans_exact(&[], 2).is_err());
    }
}
