//! Exact 1-D k-means through a penalty per cluster (Lagrangian relaxation).
//!
//! Minimising `SSE + lambda * clusters` over all partitions of the sorted data needs no
//! DP layer per cluster. With `S1` the prefix sums and `H(r) = F(r) - S2[r]` (as in
//! `kmeans_exact`), `H(r) = lambda + min_{j<r} H(j) - (S1[r] - S1[j])^2 / (r - j)`: one
//! pass over the data. If the minimiser for some `lambda` has exactly `k` clusters, it is
//! an optimal k-clustering, because every k-partition `P` has `SSE(P) + lambda k >=` the
//! minimum. The optimal error `D(c)` with `c` clusters is convex in `c`, so the penalties
//! that give `k` clusters form the interval `[D(k) - D(k+1), D(k-1) - D(k)]`; it is empty
//! only when `D` is not strictly convex at `k` (ties, such as evenly spaced repeated
//! values), and then the caller falls back to the layered DP. This is the route of
//! Grønlund et al., "Fast exact k-means, k-medians and Bregman divergence clustering in
//! 1D" (arXiv 1701.07204, 2017).
//!
//! One pass: the cost matrix is Monge, so a later cluster start that beats an earlier one
//! at some row beats it at every later row (the concave least-weight subsequence problem
//! of Hirschberg and Larmore, 1987). A deque holds the candidate starts, each owning an
//! interval of rows; a new candidate's interval begins at the first row where it beats the
//! last one. On trained weights that row is usually within a few rows, so it is looked
//! for four rows at a time without branches first, then by galloping search: a pass makes
//! about a dozen cost evaluations per value.
//!
//! The penalty search: a first guess from the same search on a subsample, scaled by the
//! size ratio (the error per value is what the penalty trades against); then, once
//! passes have given too many and too few clusters, the slope between those two
//! solutions, at which the optimum either has a cluster count strictly between them or
//! ties them (no `lambda` gives `k`: fall back).

use super::sorted::{Splits, prefix_sums, size_between};
use std::borrow::Cow;

/// Passes tried before giving up on a penalty that gives exactly `k` clusters.
const MAX_PASSES: usize = 40;

/// Rows a new candidate is tried on, four at a time, before galloping.
const LINEAR_ROWS: usize = 8;

/// Values in the subsample that guesses the first penalty, per cluster and at least.
const SUBSAMPLE_PER_CLUSTER: usize = 64;
const SUBSAMPLE_MIN: usize = 1 << 14;

/// Reusable work space for penalised passes over one sorted data set.
pub(crate) struct Penalized<'a> {
    /// The boundaries' prefix sums and value counts (see [`Splits`]).
    s1: &'a [f64],
    counts: Option<&'a [u32]>,
    /// `h[j] = H(j)`.
    h: Vec<f64>,
    /// `arg[r]`: start of the last cluster of the best partition of the first `r` values.
    arg: Vec<u32>,
    /// Candidate starts with the first row each owns, ascending in both.
    deque: Vec<(u32, u32)>,
    /// `inv[d] = 1 / d`: a load instead of a division. Most lookups have a small `d`
    /// (a candidate against the rows just ahead of it) and the rest walk the table in
    /// order, so it stays cheap; a table of only the small `d` was slower.
    inv: Vec<f64>,
}

/// The outcome of one pass: the cluster count and `G = D(c) - S2[n]`, the optimal error
/// up to a constant that is the same for every pass.
#[derive(Clone, Copy, Debug)]
struct Pass {
    clusters: usize,
    g: f64,
}

impl<'a> Penalized<'a> {
    /// Work space for the clusterings whose boundaries are `splits` (at least one unit).
    pub fn new(splits: &'a Splits<'a>) -> Self {
        let n = splits.units();
        Self {
            s1: &splits.s1,
            counts: splits.counts.as_deref(),
            h: vec![0.0; n + 1],
            arg: vec![0; n + 1],
            deque: Vec::new(),
            inv: (0..=splits.size(0, n)).map(|d| 1.0 / d as f64).collect(),
        }
    }

    /// Cost of the best partition of the first `j` units followed by the cluster
    /// `j..r`, less `S2[r]`. Every path uses this one expression. `RUNS`: whether the
    /// units are runs with counts (a separate copy of the pass, so that plain values pay
    /// no branch per evaluation).
    #[inline(always)]
    fn cost<const RUNS: bool>(&self, j: usize, r: usize) -> f64 {
        let d = self.s1[r] - self.s1[j];
        let size = if RUNS { size_between(self.counts, j, r) } else { r - j };
        self.h[j] - d * d * self.inv[size]
    }

    /// One pass with penalty `lambda`: the best partition's cluster count and error.
    fn pass(&mut self, lambda: f64) -> Pass {
        if self.counts.is_some() {
            self.pass_with::<true>(lambda)
        } else {
            self.pass_with::<false>(lambda)
        }
    }

    fn pass_with<const RUNS: bool>(&mut self, lambda: f64) -> Pass {
        let n = self.s1.len() - 1;
        let mut dq = std::mem::take(&mut self.deque);
        dq.clear();
        dq.push((0, 1));
        let mut head = 0;
        for r in 1..=n {
            while head + 1 < dq.len() && dq[head + 1].1 as usize <= r {
                head += 1;
            }
            let j = dq[head].0 as usize;
            self.h[r] = lambda + self.cost::<RUNS>(j, r);
            self.arg[r] = j as u32;
            if r == n {
                break;
            }
            // Candidate r owns the rows from the first one where it beats the back.
            let mut from = r + 1;
            while dq.len() > head {
                let (b, start) = dq[dq.len() - 1];
                from = (start as usize).max(r + 1);
                if self.cost::<RUNS>(r, from) < self.cost::<RUNS>(b as usize, from) {
                    dq.pop();
                } else {
                    break;
                }
            }
            if dq.len() == head {
                dq.push((r as u32, (r + 1) as u32));
                continue;
            }
            let b = dq[dq.len() - 1].0 as usize;
            if let Some(row) = self.first_win::<RUNS>(r, b, from, n) {
                dq.push((r as u32, row as u32));
            }
        }
        self.deque = dq;
        let h = self.h[n];
        let clusters = self.ends().len();
        Pass { clusters, g: h - lambda * clusters as f64 }
    }

    /// Bit `l` set where start `r` beats start `b` at row `t + l`, for `l < 4`.
    #[inline(always)]
    fn wins4<const RUNS: bool>(&self, r: usize, b: usize, t: usize) -> u32 {
        let mut mask = 0;
        for l in 0..4 {
            mask |= u32::from(self.cost::<RUNS>(r, t + l) < self.cost::<RUNS>(b, t + l)) << l;
        }
        mask
    }

    /// First row in `lo+1..=n` where start `r` beats start `b` (it loses at `lo`), by
    /// galloping from `lo` and then bisecting; `None` if it never does.
    #[inline(always)]
    fn first_win<const RUNS: bool>(
        &self,
        r: usize,
        b: usize,
        mut lo: usize,
        n: usize,
    ) -> Option<usize> {
        let wins = |t: usize| self.cost::<RUNS>(r, t) < self.cost::<RUNS>(b, t);
        // The first rows four at a time without branching: the crossing is usually that
        // close, and a scan mispredicts one branch where a search mispredicts half.
        for _ in 0..LINEAR_ROWS / 4 {
            if lo + 4 > n {
                break;
            }
            let mask = self.wins4::<RUNS>(r, b, lo + 1);
            if mask != 0 {
                return Some(lo + 1 + mask.trailing_zeros() as usize);
            }
            lo += 4;
        }
        let mut step = 1;
        let mut hi = loop {
            if lo + step >= n {
                if !wins(n) {
                    return None;
                }
                break n;
            }
            if wins(lo + step) {
                break lo + step;
            }
            lo += step;
            step *= 2;
        };
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if wins(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(hi)
    }

    /// Ends of the clusters of the last pass's partition, ascending (last = `n`).
    pub fn ends(&self) -> Vec<usize> {
        let n = self.s1.len() - 1;
        let mut ends = vec![n];
        let mut i = n;
        while self.arg[i] > 0 {
            i = self.arg[i] as usize;
            ends.push(i);
        }
        ends.reverse();
        ends
    }

    /// Searches for a penalty whose optimum has exactly `k` clusters, starting at
    /// `lambda`; returns it, with the partition left in place for [`Self::ends`], or
    /// `None` if there is none (see the module docs) or the search runs out of passes.
    pub fn search(&mut self, k: usize, mut lambda: f64) -> Option<f64> {
        // Closest passes with too many (`many`) and too few (`few`) clusters.
        let (mut many, mut few): (Option<Pass>, Option<Pass>) = (None, None);
        for _ in 0..MAX_PASSES {
            if !(lambda.is_finite() && lambda > 0.0) {
                return None;
            }
            let p = self.pass(lambda);
            if p.clusters == k {
                return Some(lambda);
            }
            let bracketed = many.is_some() && few.is_some();
            if p.clusters > k {
                if many.is_some_and(|m| p.clusters >= m.clusters) {
                    if bracketed {
                        // The hull slope gave back a known count: a tie, nothing between.
                        return None;
                    }
                } else {
                    many = Some(p);
                }
            } else if few.is_some_and(|f| p.clusters <= f.clusters) {
                if bracketed {
                    return None;
                }
            } else {
                few = Some(p);
            }
            lambda = match (many, few) {
                // At the slope between the two, the optimum lies strictly between or ties.
                (Some(m), Some(f)) => (f.g - m.g) / (m.clusters - f.clusters) as f64,
                // The penalty per cluster scales about as k^-3 (error as k^-2).
                _ => lambda * (p.clusters as f64 / k as f64).powi(3),
            };
        }
        None
    }
}

/// A first penalty for `k` clusters of the sorted values `x`: the search on a subsample of
/// them, scaled to the full size; if that search fails, a guess
/// from the variance (the penalty of evenly spread data).
pub(crate) fn first_penalty(x: &[f64], k: usize) -> f64 {
    let n = x.len();
    let sub = (SUBSAMPLE_PER_CLUSTER * k).max(SUBSAMPLE_MIN);
    let step = n.div_ceil(sub).max(1);
    let picked: Vec<f64> = x.iter().skip(step / 2).step_by(step).copied().collect();
    let m = picked.len();
    let mean = picked.iter().sum::<f64>() / m as f64;
    let var = picked.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m as f64;
    // Evenly spread: D(k) = m var / k^2, so the penalty is about 2 m var / k^3.
    let guess = 2.0 * m as f64 * var / (k as f64).powi(3);
    if step == 1 || m < k {
        return guess * (n as f64 / m as f64);
    }
    let splits = Splits { s1: Cow::Owned(prefix_sums(&picked)), counts: None };
    let found = Penalized::new(&splits).search(k, guess).unwrap_or(guess);
    found * (n as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sharing::sorted::Sorted;
    use proptest::prelude::*;

    /// Best squared error of the sorted values in `k` runs, by the layered DP.
    fn layered(s: &Sorted, k: usize) -> f64 {
        super::super::kmeans_exact::layered_sse(s, k)
    }

    #[test]
    fn a_tie_at_k_has_no_penalty_and_falls_back() {
        // 0,0,1,1,2,2,3,3: D(2) - D(3) = D(3) - D(4) = 1, so no penalty gives 3 clusters.
        let data = [0.0f32, 0.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0];
        let s = Sorted::new(&data).unwrap();
        let splits = s.splits();
        assert_eq!(splits.counts.as_deref(), Some(&[0, 2, 4, 6, 8][..]));
        let mut p = Penalized::new(&splits);
        assert_eq!(p.search(3, 0.5), None);
        assert!(p.search(2, 0.5).is_some());
        assert_eq!(splits.to_values(&p.ends()), vec![4, 8]);
        let exact = crate::sharing::kmeans_exact(&data, 3).unwrap();
        assert_eq!(exact.sse, 1.0);
    }

    proptest! {
        /// From any first penalty, the search either gives up or lands on an optimum.
        #[test]
        fn any_start_finds_the_optimum_or_gives_up(
            data in proptest::collection::vec(-50.0f32..50.0, 2..400),
            round in prop::bool::ANY,
            k in 2usize..20,
            start in -8.0f64..8.0,
        ) {
            // Rounded to integers, many values repeat: the search runs on runs of them.
            let data: Vec<f32> = if round { data.iter().map(|v| v.round()).collect() } else { data };
            let s = Sorted::new(&data).unwrap();
            let k = k.min(s.distinct);
            let splits = s.splits();
            let mut p = Penalized::new(&splits);
            if p.search(k, 10f64.powf(start)).is_some() {
                let ends = splits.to_values(&p.ends());
                prop_assert_eq!(ends.len(), k);
                let got = s.finish(&ends, 0).sse;
                let best = layered(&s, k);
                prop_assert!(got <= best + 1e-9 * (1.0 + best), "{} > {}", got, best);
            }
        }
    }
}
