//! Exact (globally optimal) 1-D k-means.
//!
//! Wang and Song, "Ckmeans.1d.dp: optimal k-means clustering in one dimension by dynamic
//! programming" (The R Journal 3(2), 2011). In one dimension an optimal clustering is a
//! set of runs of the sorted data, and the error of a run `j..i` is O(1) from prefix sums.
//! Two exact solvers share that cost:
//!
//! - first, the penalised search of `penalized.rs`: one pass over the data per penalty
//!   tried (usually one or two passes in all), O(n) memory;
//! - when no penalty gives exactly `k` clusters (a tie in the error curve), the layered DP
//!   below: O(k n) time and a `k n` backtrack table.
//!
//! The layered DP: `D[m][i]`, the least squared error of the first `i` values in `m`
//! clusters, is `min_j D[m-1][j] + cost(j, i)`, where `cost` satisfies the quadrangle
//! inequality. So the matrix `A[i][j] = D[m-1][j] + cost(j, i)` is totally monotone and
//! each layer's row minima come from the SMAWK algorithm (Aggarwal, Klawe, Moran, Shor
//! and Wilber, "Geometric applications of a matrix-searching algorithm", Algorithmica 2,
//! 1987) in O(n) evaluations, as in the linear method of later Ckmeans.1d.dp versions.
//!
//! With `S1`, `S2` the prefix sums of the values and their squares, `cost(j, i) =
//! S2[i] - S2[j] - (S1[i] - S1[j])^2 / (i - j)`, so the DP runs on `H[m][i] = D[m][i] -
//! S2[i] = min_j H[m-1][j] - (S1[i] - S1[j])^2 / (i - j)`: `S2` cancels out, leaving one
//! subtraction, one square and one division per candidate. Each layer's rows are cut
//! into fixed chunks at pivot rows whose minima are scanned first (narrowed by
//! `J[m-1][i] <= J[m][i]`, as in Ckmeans.1d.dp); the chunks then run SMAWK independently,
//! in parallel under rayon, with a result that does not depend on the thread count.
//! Memory: a u32 backtrack table of `(k - 2) (n + 1)` entries (120 MB for n = 10^6,
//! k = 32) plus O(n) f64 work arrays.

use super::kmeans::Clustering;
use super::penalized::{Penalized, first_penalty};
use super::sorted::{Sorted, Splits};
use crate::{PruneError, Result};

/// Largest `k` accepted (a 16-bit codebook).
const MAX_K: usize = 1 << 16;

/// Largest backtrack table the layered DP allocates, in entries (4 GiB).
const MAX_TABLE: usize = 1 << 30;

/// Rows per SMAWK chunk. A layer's rows are cut into chunks at pivot rows, whose minima
/// are found first by scans; the chunks are then independent (rayon runs them in
/// parallel) and small enough to stay in cache. The cut depends only on `n`, so the
/// result does not depend on the thread count.
const CHUNK_ROWS: usize = 1 << 16;

/// Optimal 1-D k-means (Wang and Song 2011, Ckmeans.1d.dp; for weight sharing as in
/// Han et al. 2015, arXiv 1510.00149). The squared error is never above Lloyd's from any
/// initialisation, and on trained weights the solver costs a few Lloyd runs at most (see
/// `benches/benches/kmeans.rs`): it finds the penalty per cluster at which the best
/// clustering has exactly `k` clusters (Grønlund et al. 2017), and falls back to the
/// O(k n) layered DP only when the error curve has a tie at `k`.
///
/// `k` must be in `1..=65536`; with fewer distinct values than `k` the codebook has one
/// entry per distinct value. The result is deterministic. The fallback needs a table of
/// `(k - 2) (n + 1)` u32; above 2^30 entries it returns an error instead of allocating.
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
    exact_sorted(&Sorted::new(data)?, k)
}

/// The optimum on already sorted data: the penalised search, else the layered DP.
pub(crate) fn exact_sorted(s: &Sorted, k: usize) -> Result<Clustering> {
    let n = s.len();
    let k = k.min(s.distinct);
    if k == 1 {
        return Ok(s.finish(&[n], 0));
    }
    if k == s.distinct {
        // One cluster per distinct value: error 0.
        return Ok(s.finish(&s.run_ends(), 0));
    }
    let splits = s.splits();
    let mut solver = Penalized::new(&splits);
    if solver.search(k, first_penalty(&s.x, k)).is_some() {
        return Ok(s.finish(&splits.to_values(&solver.ends()), 0));
    }
    drop(solver);
    let units = splits.units();
    if (k - 2).saturating_mul(units + 1) > MAX_TABLE {
        return Err(PruneError::param(
            "k",
            k,
            format!(
                "the error curve of these {n} values ties at k = {k}, and the exact DP \
                 this needs would take a table of (k - 2)({units} + 1) > 2^30 entries"
            ),
        ));
    }
    let ends = solve_dp(&splits, k, Rows::Smawk { chunk_rows: CHUNK_ROWS });
    Ok(s.finish(&splits.to_values(&ends), 0))
}

/// The layered DP's squared error, for tests of the penalised search.
#[cfg(test)]
pub(crate) fn layered_sse(s: &Sorted, k: usize) -> f64 {
    layered(s, k, Rows::Smawk { chunk_rows: CHUNK_ROWS }).sse
}

/// The layered DP on `s`'s boundaries, as a clustering.
#[cfg(test)]
fn layered(s: &Sorted, k: usize, rows: Rows) -> Clustering {
    let splits = s.splits();
    s.finish(&splits.to_values(&solve_dp(&splits, k.min(s.distinct), rows)), 0)
}

/// How a layer's row minima are found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// SMAWK, O(n) per layer, on chunks of `chunk_rows` rows (see [`CHUNK_ROWS`]).
    Smawk { chunk_rows: usize },
    /// Divide and conquer with full scans, O(n log n) per layer: the reference the
    /// tests check SMAWK against.
    #[cfg(test)]
    DivideAndConquer,
}

/// The DP (see the module docs) over the boundaries `splits`, `1 <= k <= units`: the
/// cluster ends, in boundaries.
fn solve_dp(splits: &Splits<'_>, k: usize, rows: Rows) -> Vec<usize> {
    let n = splits.units();
    if k == 1 {
        return vec![n];
    }
    let s1 = &splits.s1[..];
    // pts[j] = (S1[j], H[m-1][j]): what a candidate split j contributes, side by side.
    // H[1][i] = -S1[i]^2 / size(0, i); H[m][0] is never read for m >= 1.
    let mut pts: Vec<[f64; 2]> = (0..=n)
        .map(|i| {
            let x = s1[i];
            [x, if i == 0 { f64::INFINITY } else { -(x * x) / splits.size(0, i) as f64 }]
        })
        .collect();
    let mut cur = vec![f64::INFINITY; n + 1];
    // back[(m - 2) * (n + 1) + i] = J[m][i], the first index of the m-th cluster when the
    // first i values form m clusters, for the inner layers m = 2..k-1.
    let mut back = vec![0u32; (k - 2) * (n + 1)];
    let mut scratch: Vec<Vec<Level>> = Vec::new();
    for m in 2..k {
        // The first i values in m clusters leave n - i >= k - m values for the others.
        let (lo, hi) = (m, n - (k - m));
        let layer = Layer { splits, pts: &pts };
        let (done, rest) = back.split_at_mut((m - 2) * (n + 1));
        // J[m-1][i] <= J[m][i] (as in Ckmeans.1d.dp) narrows the pivot scans.
        let lower = (m > 2).then(|| &done[(m - 3) * (n + 1)..]);
        let arg = &mut rest[lo..=hi];
        let val = &mut cur[lo..=hi];
        match rows {
            Rows::Smawk { chunk_rows } => {
                layer.smawk_rows(lo, hi, m - 1, chunk_rows, lower, &mut scratch, arg, val)
            }
            #[cfg(test)]
            Rows::DivideAndConquer => layer.divide(lo, hi, m - 1, hi - 1, arg, val),
        }
        // Columns m..=hi of the next layer are exactly the rows just computed.
        for (p, &v) in pts[lo..=hi].iter_mut().zip(&cur[lo..=hi]) {
            p[1] = v;
        }
        pts[..lo].iter_mut().for_each(|p| p[1] = f64::INFINITY);
    }
    // Last layer: only i = n is needed.
    let layer = Layer { splits, pts: &pts };
    let (_, split) = layer.scan(n, k - 1, n - 1);
    let mut ends = vec![0usize; k];
    ends[k - 1] = n;
    ends[k - 2] = split;
    for m in (2..k).rev() {
        let i = ends[m - 1];
        ends[m - 2] = back[(m - 2) * (n + 1) + i] as usize;
    }
    ends
}

/// Work space of one SMAWK recursion level: the reduced columns (a stack) and, for each,
/// its value in the row at the same stack position.
#[derive(Default)]
struct Level {
    cols: Vec<u32>,
    vals: Vec<f64>,
}

/// One DP layer: `A[i][j] = H[m-1][j] - (S1[i] - S1[j])^2 / size(j, i)` for `j < i`, and
/// `+inf` for `j >= i` (which keeps the matrix totally monotone).
struct Layer<'a> {
    splits: &'a Splits<'a>,
    pts: &'a [[f64; 2]],
}

impl Layer<'_> {
    /// `A[i][j]`. Every path evaluates it with this one expression, so that the same
    /// (i, j) always gives the same bits.
    #[inline(always)]
    fn eval(&self, i: usize, j: usize) -> f64 {
        if j >= i {
            return f64::INFINITY;
        }
        let [x, h] = self.pts[j];
        let d = self.splits.s1[i] - x;
        h - d * d / self.splits.size(j, i) as f64
    }

    /// Leftmost minimum of row `i` over columns `a..=b` (`a <= b`), by a full scan.
    fn scan(&self, i: usize, a: usize, b: usize) -> (f64, usize) {
        let mut best = (f64::INFINITY, a);
        for j in a..=b {
            let v = self.eval(i, j);
            if v < best.0 {
                best = (v, j);
            }
        }
        best
    }

    /// Row minima (values `val`, leftmost columns `arg`, both indexed by `i - lo`) of
    /// rows `lo..=hi` over columns `first..hi`: pivot rows first (every `chunk_rows`,
    /// see [`CHUNK_ROWS`]), then SMAWK on each chunk between them. `lower[i]`, if given, bounds row `i`'s
    /// minimum from below.
    fn smawk_rows(
        &self,
        lo: usize,
        hi: usize,
        first: usize,
        chunk_rows: usize,
        lower: Option<&[u32]>,
        scratch: &mut Vec<Vec<Level>>,
        arg: &mut [u32],
        val: &mut [f64],
    ) {
        let cnt = hi - lo + 1;
        let chunks = cnt.div_ceil(chunk_rows);
        // Chunk q holds rows bounds[q]..bounds[q + 1]; its first row is a pivot (q > 0).
        let bounds: Vec<usize> = (0..=chunks).map(|q| lo + q * cnt / chunks).collect();
        let mut out = Out { row0: lo, arg, val };
        self.pivots(&bounds[1..chunks], first, hi - 1, lower, &mut out);
        let jpiv: Vec<u32> = bounds[1..chunks].iter().map(|&i| out.arg_of(i)).collect();
        if scratch.len() < chunks {
            scratch.resize_with(chunks, Vec::new);
        }
        let (mut arg, mut val) = (out.arg, out.val);
        let mut tasks = Vec::with_capacity(chunks);
        for (q, levels) in scratch.iter_mut().enumerate().take(chunks) {
            let skip = usize::from(q > 0);
            let rows = bounds[q + 1] - bounds[q];
            let (a, rest) = std::mem::take(&mut arg).split_at_mut(rows);
            let (v, vrest) = std::mem::take(&mut val).split_at_mut(rows);
            (arg, val) = (rest, vrest);
            let cols_lo = if q == 0 { first } else { jpiv[q - 1] as usize };
            let cols_hi = if q + 1 == chunks { hi - 1 } else { jpiv[q] as usize };
            let out = Out { row0: bounds[q] + skip, arg: &mut a[skip..], val: &mut v[skip..] };
            tasks.push((rows - skip, cols_lo, cols_hi, levels, out));
        }
        let run = |(rows, cols_lo, cols_hi, levels, mut out): (
            usize,
            usize,
            usize,
            &mut Vec<Level>,
            Out<'_>,
        )| {
            if rows == 0 {
                return;
            }
            let depth = (usize::BITS - rows.leading_zeros()) as usize + 1;
            if levels.len() < depth {
                levels.resize_with(depth, Level::default);
            }
            let (cols, levels) = levels.split_last_mut().expect("depth >= 1");
            cols.cols.clear();
            cols.cols.extend(cols_lo as u32..=cols_hi as u32);
            self.smawk(out.row0, 1, rows, &cols.cols, levels, &mut out);
        };
        if chunks == 1 {
            tasks.into_iter().for_each(run);
        } else {
            use rayon::prelude::*;
            tasks.into_par_iter().for_each(run);
        }
    }

    /// Minima of the pivot rows `piv` (ascending) over columns `a..=b`, middle pivot
    /// first so that the others search only between their neighbours' minima.
    fn pivots(&self, piv: &[usize], a: usize, b: usize, lower: Option<&[u32]>, out: &mut Out<'_>) {
        if piv.is_empty() {
            return;
        }
        let mid = piv.len() / 2;
        let i = piv[mid];
        let hi = b.min(i - 1);
        let lo = lower.map_or(a, |l| a.max(l[i] as usize)).min(hi);
        let (v, j) = self.scan(i, lo, hi);
        out.set(i, v, j as u32);
        self.pivots(&piv[..mid], a, j, lower, out);
        self.pivots(&piv[mid + 1..], j, b, lower, out);
    }

    /// SMAWK on rows `base + p * step` (`p < cnt`) and the ascending columns `cols`,
    /// whose minima are known to lie in `cols`: REDUCE the columns to at most `cnt`,
    /// solve the odd rows recursively, then scan each even row between the minima of its
    /// neighbours.
    fn smawk(
        &self,
        base: usize,
        step: usize,
        cnt: usize,
        cols: &[u32],
        levels: &mut [Level],
        out: &mut Out<'_>,
    ) {
        let (level, deeper) = levels.split_first_mut().expect("enough levels");
        let stack: &[u32] = if cols.len() <= cnt {
            // Already no more columns than rows: nothing to reduce.
            if cnt == 1 {
                out.set(base, self.eval(base, cols[0] as usize), cols[0]);
                return;
            }
            cols
        } else {
            let (stack, vals) = (&mut level.cols, &mut level.vals);
            stack.clear();
            vals.clear();
            // REDUCE: the column at stack position p is compared in row p. A new column
            // that beats the top in the top's row beats it in every later row too
            // (monotonicity), and the top already lost to the column below it in every
            // earlier row.
            for &c in cols {
                while let Some(&top) = vals.last() {
                    if top <= self.eval(base + (vals.len() - 1) * step, c as usize) {
                        break;
                    }
                    stack.pop();
                    vals.pop();
                }
                let len = stack.len();
                if len < cnt {
                    stack.push(c);
                    vals.push(self.eval(base + len * step, c as usize));
                }
            }
            if cnt == 1 {
                out.set(base, vals[0], stack[0]);
                return;
            }
            stack
        };
        self.smawk(base + step, 2 * step, cnt / 2, stack, deeper, out);
        // Even rows: between the minima of the neighbouring odd rows.
        let mut t = 0;
        for p in (0..cnt).step_by(2) {
            let r = base + p * step;
            let end = if p + 1 < cnt { out.arg_of(r + step) } else { stack[stack.len() - 1] };
            let mut best = (f64::INFINITY, stack[t]);
            loop {
                let c = stack[t];
                let v = self.eval(r, c as usize);
                if v < best.0 {
                    best = (v, c);
                }
                if c == end {
                    break;
                }
                t += 1;
            }
            out.set(r, best.0, best.1);
        }
    }

    /// Reference: rows `ilo..=ihi` with minima known to lie in `jlo..=jhi`, mid row
    /// first by a full scan, then each half on its side of the mid row's minimum.
    #[cfg(test)]
    fn divide(
        &self,
        ilo: usize,
        ihi: usize,
        jlo: usize,
        jhi: usize,
        arg: &mut [u32],
        val: &mut [f64],
    ) {
        if ilo > ihi {
            return;
        }
        let mid = ilo + (ihi - ilo) / 2;
        let (best, at) = self.scan(mid, jlo, jhi.min(mid - 1));
        let (arg_lo, arg_rest) = arg.split_at_mut(mid - ilo);
        let (val_lo, val_rest) = val.split_at_mut(mid - ilo);
        arg_rest[0] = at as u32;
        val_rest[0] = best;
        if mid > ilo {
            self.divide(ilo, mid - 1, jlo, at, arg_lo, val_lo);
        }
        self.divide(mid + 1, ihi, at, jhi, &mut arg_rest[1..], &mut val_rest[1..]);
    }
}

/// SMAWK's output rows, indexed by `i - row0`.
struct Out<'a> {
    row0: usize,
    arg: &'a mut [u32],
    val: &'a mut [f64],
}

impl Out<'_> {
    #[inline(always)]
    fn set(&mut self, i: usize, v: f64, j: u32) {
        self.val[i - self.row0] = v;
        self.arg[i - self.row0] = j;
    }

    #[inline(always)]
    fn arg_of(&self, i: usize) -> u32 {
        self.arg[i - self.row0]
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

    /// A long input: the penalised search and SMAWK find the same optimum as the
    /// divide-and-conquer reference.
    #[test]
    fn every_solver_finds_the_same_optimum() {
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
            let pruned = layered(&s, k, Rows::Smawk { chunk_rows: CHUNK_ROWS });
            let full = layered(&s, k, Rows::DivideAndConquer);
            // Pivot rows and chunks (many of them here) change nothing but the speed.
            for chunk_rows in [1, 7, 1000] {
                let chunked = layered(&s, k, Rows::Smawk { chunk_rows });
                assert!((chunked.sse - full.sse).abs() <= slack(&data), "k={k}, {chunk_rows}");
            }
            assert!(
                (pruned.sse - full.sse).abs() <= slack(&data),
                "k={k}: {} vs {}",
                pruned.sse,
                full.sse
            );
            let penalized = exact_sorted(&s, k).unwrap();
            assert!((penalized.sse - full.sse).abs() <= slack(&data), "k={k}");
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
