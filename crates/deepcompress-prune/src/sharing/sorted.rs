//! Sorted 1-D data with prefix sums: what both k-means solvers share.
//!
//! In one dimension every optimal (and every Lloyd) clustering is a set of contiguous runs
//! of the sorted data, so after one sort a cluster is a pair of boundaries and its sum and
//! mean come from prefix sums in O(1) (the exact DP needs no sum of squares: see
//! `kmeans_exact`).

use super::kmeans::Clustering;
use crate::{PruneError, Result};
use std::borrow::Cow;

/// The boundaries the exact solvers choose from: `s1[t]` is the sum of the values before
/// boundary `t` (`t = 0..=units`), and `counts[t]` their number (`None`: `t`).
pub(crate) struct Splits<'a> {
    pub s1: Cow<'a, [f64]>,
    pub counts: Option<Vec<u32>>,
}

impl Splits<'_> {
    /// Number of units (values, or runs of equal values) between the boundaries.
    pub fn units(&self) -> usize {
        self.s1.len() - 1
    }

    /// Number of values between boundaries `j < i`.
    #[inline(always)]
    pub fn size(&self, j: usize, i: usize) -> usize {
        size_between(self.counts.as_deref(), j, i)
    }

    /// Cluster ends in values, from ends in boundaries.
    pub fn to_values(&self, ends: &[usize]) -> Vec<usize> {
        ends.iter().map(|&e| self.size(0, e)).collect()
    }
}

/// Number of values between boundaries `j < i` with value counts `counts` (see [`Splits`]).
#[inline(always)]
pub(crate) fn size_between(counts: Option<&[u32]>, j: usize, i: usize) -> usize {
    match counts {
        Some(c) => (c[i] - c[j]) as usize,
        None => i - j,
    }
}

/// Data sorted once, with the permutation back to the caller's order and prefix sums.
#[derive(Debug)]
pub(crate) struct Sorted {
    /// Values in ascending order, shifted by `shift` (centring reduces cancellation in
    /// the prefix-sum costs).
    pub x: Vec<f64>,
    /// `perm[t]` is the caller's index of the `t`-th smallest value.
    pub perm: Vec<u32>,
    /// `s1[i]` = sum of `x[..i]`.
    pub s1: Vec<f64>,
    /// The value subtracted from every datum.
    pub shift: f64,
    /// Number of distinct values.
    pub distinct: usize,
}

/// Maps an f32 to a u32 whose unsigned order is the float's total order.
#[inline]
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 { !b } else { b | 0x8000_0000 }
}

#[inline]
fn from_key(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 { k & 0x7FFF_FFFF } else { !k })
}

impl Sorted {
    /// Sorts `data` (finite, non-empty, at most `u32::MAX` values).
    pub fn new(data: &[f32]) -> Result<Self> {
        if data.is_empty() {
            return Err(PruneError::param("data", "[]", "k-means needs at least one value"));
        }
        if data.len() > u32::MAX as usize {
            return Err(PruneError::param("data length", data.len(), "at most 2^32 - 1 values"));
        }
        if let Some((i, v)) = data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(PruneError::param(format!("data[{i}]"), v, "k-means needs finite values"));
        }
        // One u64 sort of (order key, index) pairs: faster than sorting indices by a
        // float comparator, and ties are broken by index, so the order is deterministic.
        let mut keys: Vec<u64> = data
            .iter()
            .enumerate()
            .map(|(i, &v)| ((order_key(v + 0.0) as u64) << 32) | i as u64)
            .collect();
        keys.sort_unstable();
        let n = data.len();
        let mut raw = Vec::with_capacity(n);
        let mut perm = Vec::with_capacity(n);
        for k in &keys {
            raw.push(from_key((k >> 32) as u32) as f64);
            perm.push(*k as u32);
        }
        drop(keys);
        let shift = raw[n / 2];
        let mut x = raw;
        let mut distinct = 1;
        for t in 0..n {
            if t > 0 && x[t] != x[t - 1] {
                distinct += 1;
            }
        }
        x.iter_mut().for_each(|v| *v -= shift);
        let s1 = prefix_sums(&x);
        Ok(Self { x, perm, s1, shift, distinct })
    }

    /// Where clusters may begin and end: between every two values, or, when at least a
    /// quarter of the values repeat others, only between runs of equal values (some
    /// optimal clustering keeps equal values together, and the solvers then have fewer
    /// boundaries and no ties inside a run).
    pub fn splits(&self) -> Splits<'_> {
        // Runs pay off only with many repeats: a count lookup per cost evaluation made
        // the 10^6-weight benchmark (0.5 % repeats) 40 % slower.
        if self.distinct > self.len() / 4 * 3 {
            return Splits { s1: Cow::Borrowed(&self.s1), counts: None };
        }
        let ends = self.run_ends();
        let s1 = std::iter::once(0.0).chain(ends.iter().map(|&e| self.s1[e])).collect();
        let counts = std::iter::once(0).chain(ends.iter().map(|&e| e as u32)).collect();
        Splits { s1: Cow::Owned(s1), counts: Some(counts) }
    }

    /// Ends of the runs of equal values, ascending (last = `len`).
    pub fn run_ends(&self) -> Vec<usize> {
        let n = self.len();
        (1..=n).filter(|&t| t == n || self.x[t] != self.x[t - 1]).collect()
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Squared error of the run `x[j..i]` around its mean (`j < i`), summed directly.
    #[cfg(test)]
    pub fn cost(&self, j: usize, i: usize) -> f64 {
        let mean = self.mean(j, i);
        self.x[j..i].iter().map(|v| (v - mean) * (v - mean)).sum()
    }

    /// Mean of the run `x[j..i]` (shifted).
    #[inline]
    pub fn mean(&self, j: usize, i: usize) -> f64 {
        (self.s1[i] - self.s1[j]) / (i - j) as f64
    }

    /// Builds the result from the run ends `ends` (ascending, last = `len`, no empty run):
    /// codebook of run means (ascending), labels in the caller's order, and the squared
    /// error summed directly (not from prefix sums, so both solvers report it alike).
    pub fn finish(&self, ends: &[usize], iterations: usize) -> Clustering {
        let mut labels = vec![0u32; self.len()];
        let mut codebook = Vec::with_capacity(ends.len());
        let mut sse = 0.0;
        let mut start = 0;
        for (c, &end) in ends.iter().enumerate() {
            let mean = self.mean(start, end);
            for t in start..end {
                let d = self.x[t] - mean;
                sse += d * d;
                labels[self.perm[t] as usize] = c as u32;
            }
            codebook.push((mean + self.shift) as f32);
            start = end;
        }
        Clustering { codebook, labels, sse, iterations }
    }
}

/// `s1[i]` = sum of `x[..i]`.
pub(crate) fn prefix_sums(x: &[f64]) -> Vec<f64> {
    let mut s1 = Vec::with_capacity(x.len() + 1);
    let mut a = 0.0;
    s1.push(0.0);
    for &v in x {
        a += v;
        s1.push(a);
    }
    s1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_key_sorts_like_floats() {
        let v = [-3.5f32, -0.0, 0.0, 1e-30, 2.0, -1e30, f32::MAX];
        for a in v {
            assert_eq!(from_key(order_key(a)).to_bits(), a.to_bits());
            for b in v {
                if a < b {
                    assert!(order_key(a) < order_key(b), "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn prefix_costs_match_direct_sums() {
        let s = Sorted::new(&[3.0, 1.0, 2.0, 2.0, 10.0]).unwrap();
        assert_eq!(s.distinct, 4);
        assert_eq!(s.perm, vec![1, 2, 3, 0, 4]);
        assert!((s.cost(0, 4) - 2.0).abs() < 1e-12); // 1, 2, 2, 3 around 2
        assert_eq!(s.cost(4, 5), 0.0);
        assert!(Sorted::new(&[]).is_err());
        assert!(Sorted::new(&[1.0, f32::NAN]).is_err());
    }
}
