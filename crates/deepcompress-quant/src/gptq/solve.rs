//! The GPTQ solver: column-by-column rounding with optimal updates of the columns not yet
//! quantized, read from the upper Cholesky factor of the inverse Hessian.

use super::config::GptqConfig;
use super::inverse::inverse_cholesky_upper;
use crate::error::{QuantError, Result};
use crate::scheme::{Granularity, QuantScheme, Rounding};
use crate::tensor::{QuantTensor, code_bounds, fit_block};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayD, ArrayView2, Axis, s};
use rayon::prelude::*;
use serde::Serialize;

/// Rows handed to one rayon task. Rows are independent in GPTQ (they share only `H`), so
/// the result does not depend on the thread count.
const ROWS_PER_TASK: usize = 16;

/// What [`gptq_quantize`] observed.
///
/// ```
/// use deepcompress_quant::gptq::{GptqConfig, GptqStats, gptq_quantize};
/// use deepcompress_quant::QuantScheme;
/// use ndarray::{array, Array2};
/// let w = array![[0.3_f32, -0.7], [1.0, 0.1]].into_dyn();
/// let mut h = Array2::<f64>::eye(2);
/// h[[1, 1]] = 0.0; // the second input is never excited
/// let out = gptq_quantize(&w, h.view(), &QuantScheme::new(4), &GptqConfig::default())?;
/// let stats: GptqStats = out.stats;
/// assert_eq!(stats.dead_inputs, 1);
/// assert!(stats.loss >= 0.0 && stats.damp > 0.0);
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GptqStats {
    /// GPTQ's own error estimate `½ Σ (w - q)² / [H⁻¹]_qq` over all weights, in the units
    /// of `H` (the increase of the layer's squared output error it predicts).
    pub loss: f64,
    /// Inputs whose Hessian diagonal was zero: never excited by the calibration data.
    /// Their weight columns are set to zero (they cannot change the output).
    pub dead_inputs: usize,
    /// The damping added to the Hessian's diagonal, `percdamp · mean(diag H)`.
    pub damp: f64,
}

/// The result of [`gptq_quantize`]: the quantized weight and what the solver observed.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::gptq::{GptqConfig, GptqOutput, gptq_quantize};
/// use deepcompress_quant::QuantScheme;
/// use ndarray::{Array2, ArrayD};
/// let w = ArrayD::from_shape_fn(vec![4, 8], |ix| (ix[0] as f32 - ix[1] as f32) / 8.0);
/// let out: GptqOutput = gptq_quantize(&w, Array2::<f64>::eye(8).view(), &QuantScheme::new(3), &GptqConfig::default())?;
/// assert_eq!(out.tensor.shape(), &[4, 8]);
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GptqOutput {
    /// The weight, stored exactly as GPTQ rounded it.
    pub tensor: QuantTensor,
    /// Solver statistics.
    pub stats: GptqStats,
}

/// Quantizes a weight with GPTQ (Frantar, Ashkboos, Hoefler and Alistarh, "GPTQ: Accurate
/// Post-Training Quantization for Generative Pre-trained Transformers", 2022, arXiv
/// 2210.17323), minimising the layer's output error `||W X - Q X||²_F` rather than the
/// weight error that round-to-nearest minimises.
///
/// `weights` is viewed as `[shape[0], rest]` (`[out, in]`, or `[out, in*kh*kw]` for a
/// kernel); `hessian` is `H = 2 X Xᵀ / n` over that input dimension (see
/// [`Hessian`](super::Hessian)), `config` sets damping, block size and act-order. The grid
/// is the scheme's own (`bits`, symmetric or affine, per tensor, per channel or
/// `PerGroup { rows: 1, cols: g }`), and the returned [`QuantTensor`] stores exactly the
/// codes GPTQ chose, with the scheme's exact storage size.
///
/// Scales: per tensor and per channel they are fitted before the solve (on the weights
/// with dead columns zeroed); with groups, when the solver reaches a group's first column,
/// on the weights as updated so far, as in the reference implementation; with groups and
/// act-order, before the solve, per group of consecutive original columns (the
/// reference's "static groups"), so that the groups stay contiguous blocks.
///
/// Use it for post-training weight quantization at 3 or 4 bits when a few hundred
/// calibration inputs are available; at 8 bits round-to-nearest is already as good. It is
/// greedy, not optimal: on very small layers with nearly degenerate inputs at 3 bits its
/// compensations can push later weights off the grid's range and lose to
/// round-to-nearest; the returned `stats.loss` predicts the output error, so compare.
///
/// Errors: an invalid scheme or config, stochastic rounding, groups of more than one row,
/// NaN or infinite weights or Hessian, a Hessian of the wrong size or all zero (empty
/// calibration data), or a damped Hessian that is not positive definite.
///
/// ```
/// use deepcompress_core::tensor::Tensor;
/// use deepcompress_quant::gptq::{GptqConfig, Hessian, gptq_quantize};
/// use deepcompress_quant::{QuantScheme, QuantTensor};
/// use ndarray::{Array2, Ix2};
///
/// // Correlated inputs: a shared factor plus independent noise.
/// let x = Array2::from_shape_fn((256, 16), |(n, j)| {
///     let t = (n * 37 % 101) as f32 / 50.0 - 1.0;
///     let u = ((n * 7919 + j * 104729) % 1009) as f32 / 504.5 - 1.0;
///     t * (1.0 + j as f32 / 8.0) + u
/// });
/// let w = Array2::from_shape_fn((8, 16), |(i, j)| ((i * 5 + j * 3) % 11) as f32 / 11.0 - 0.5);
/// let h = Hessian::from_rows(x.view(), "fc")?;
/// let scheme = QuantScheme::new(4);
/// let gptq = gptq_quantize(&w.clone().into_dyn(), h.matrix().view(), &scheme, &GptqConfig::default())?;
/// let rtn = QuantTensor::quantize(&w.clone().into_dyn(), &scheme)?;
/// let out_err = |q: &QuantTensor| {
///     let d = &w - &q.to_dense().into_dimensionality::<Ix2>().unwrap();
///     x.dot(&d.t()).mapv(|v| v * v).sum()
/// };
/// assert!(out_err(&gptq.tensor) < out_err(&rtn));
/// assert_eq!(gptq.tensor.storage_bits(), rtn.storage_bits());
/// # Ok::<(), deepcompress_quant::QuantError>(())
/// ```
pub fn gptq_quantize(
    weights: &ArrayD<f32>,
    hessian: ArrayView2<f64>,
    scheme: &QuantScheme,
    config: &GptqConfig,
) -> Result<GptqOutput> {
    scheme.check()?;
    config.check()?;
    if let Rounding::Stochastic { .. } = scheme.rounding {
        return Err(QuantError::param(
            "rounding",
            "stochastic",
            "GPTQ rounds to nearest and corrects the error",
        ));
    }
    if let Granularity::PerGroup { rows, .. } = scheme.granularity
        && rows != 1
    {
        return Err(QuantError::param(
            "group rows",
            rows,
            "GPTQ groups run along the input dimension: use PerGroup { rows: 1, cols: g }",
        ));
    }
    if weights.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: "the weight given to GPTQ".into() });
    }
    if hessian.iter().any(|v| !v.is_finite()) {
        return Err(QuantError::NonFinite { what: "the Hessian given to GPTQ".into() });
    }
    let shape = weights.shape().to_vec();
    // The `[shape[0], rest]` view of `QuantTensor` (a scalar or a vector is one row).
    let (rows, cols) = match shape.as_slice() {
        [] => (1, 1),
        [n] => (1, *n),
        [r, rest @ ..] => (*r, rest.iter().product()),
    };
    if hessian.dim() != (cols, cols) {
        return Err(deepcompress_core::CoreError::shape(
            "GPTQ Hessian",
            format!("[{cols}, {cols}] for a weight of shape {shape:?}"),
            hessian.shape(),
        )
        .into());
    }
    if hessian.diag().iter().all(|&d| d == 0.0) {
        return Err(QuantError::param(
            "Hessian",
            "all-zero diagonal",
            "no calibration signal: the calibration data is empty or all zero",
        ));
    }
    let mut w = Array2::from_shape_vec((rows, cols), weights.iter().copied().collect())
        .expect("element count matches");
    let mut h = hessian.to_owned();
    let mut dead_inputs = 0;
    for i in 0..cols {
        if h[[i, i]] == 0.0 {
            dead_inputs += 1;
            h[[i, i]] = 1.0;
            w.column_mut(i).fill(0.0);
        }
    }
    let perm: Vec<usize> = if config.act_order {
        let mut p: Vec<usize> = (0..cols).collect();
        p.sort_by(|&a, &b| h[[b, b]].total_cmp(&h[[a, a]]).then(a.cmp(&b)));
        p
    } else {
        (0..cols).collect()
    };
    let mut hp = Array2::from_shape_fn((cols, cols), |(i, j)| h[[perm[i], perm[j]]]);
    let damp = config.percdamp * hp.diag().sum() / cols as f64;
    hp.diag_mut().mapv_inplace(|d| d + damp);
    let u = inverse_cholesky_upper(&hp)?.mapv(|v| v as f32);

    let grid = Grid::new(&w, scheme, config.act_order);
    let chunks: Vec<ChunkOut> = (0..rows.div_ceil(ROWS_PER_TASK))
        .into_par_iter()
        .map(|c| {
            let r0 = c * ROWS_PER_TASK;
            let r1 = (r0 + ROWS_PER_TASK).min(rows);
            solve_rows(w.slice(s![r0..r1, ..]), &u, &perm, &grid, r0, config.block_size, scheme)
        })
        .collect();
    let mut codes = Vec::with_capacity(rows * cols);
    let mut params = grid.fixed.clone();
    let mut loss = 0.0;
    for (c, chunk) in chunks.into_iter().enumerate() {
        codes.extend(chunk.codes);
        loss += chunk.loss;
        if let Some(g) = chunk.groups {
            let per_row = cols.div_ceil(grid.group.unwrap_or(cols));
            let at = c * ROWS_PER_TASK * per_row;
            params[at..at + g.len()].copy_from_slice(&g);
        }
    }
    let scales = params.iter().map(|p| p.0).collect();
    let zeros: Vec<i32> = params.iter().map(|p| p.1).collect();
    let zeros = (!scheme.symmetric).then_some(&zeros[..]);
    let tensor = QuantTensor::from_codes(&shape, scheme, &codes, scales, zeros)?;
    Ok(GptqOutput { tensor, stats: GptqStats { loss, dead_inputs, damp } })
}

/// Where each weight's scale and zero point come from.
#[derive(Debug)]
struct Grid {
    /// Columns per group (`None`: per tensor or per channel).
    group: Option<usize>,
    /// True when group parameters are fitted during the solve.
    dynamic: bool,
    per_tensor: bool,
    cols: usize,
    /// Parameters fitted before the solve (or placeholders for dynamic groups), in the
    /// block order of [`QuantTensor`].
    fixed: Vec<(f32, i32)>,
}

impl Grid {
    fn new(w: &Array2<f32>, scheme: &QuantScheme, act_order: bool) -> Self {
        let (rows, cols) = w.dim();
        let range = |v: ndarray::ArrayView1<f32>| {
            v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)))
        };
        let fit = |(lo, hi): (f32, f32)| {
            if lo > hi { fit_block(0.0, 0.0, scheme) } else { fit_block(lo, hi, scheme) }
        };
        match scheme.granularity {
            Granularity::PerTensor => {
                let r = w
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| (l.min(x), h.max(x)));
                Self { group: None, dynamic: false, per_tensor: true, cols, fixed: vec![fit(r)] }
            }
            Granularity::PerChannel => Self {
                group: None,
                dynamic: false,
                per_tensor: false,
                cols,
                fixed: w.rows().into_iter().map(|r| fit(range(r))).collect(),
            },
            Granularity::PerGroup { cols: g, .. } => {
                let per_row = cols.div_ceil(g);
                let fixed = if act_order {
                    (0..rows * per_row)
                        .map(|b| {
                            let (i, k) = (b / per_row, b % per_row);
                            fit(range(w.slice(s![i, k * g..((k + 1) * g).min(cols)])))
                        })
                        .collect()
                } else {
                    vec![(1.0, 0); rows * per_row]
                };
                Self { group: Some(g), dynamic: !act_order, per_tensor: false, cols, fixed }
            }
        }
    }

    /// The block index of weight `(row, col)` in [`QuantTensor`]'s order.
    fn block(&self, row: usize, col: usize) -> usize {
        match self.group {
            _ if self.per_tensor => 0,
            None => row,
            Some(g) => row * self.cols.div_ceil(g) + col / g,
        }
    }
}

/// What one task returns for its rows.
struct ChunkOut {
    /// Codes, row-major, original column order.
    codes: Vec<i32>,
    /// Dynamically fitted group parameters of these rows, row-major.
    groups: Option<Vec<(f32, i32)>>,
    loss: f64,
}

/// GPTQ on a few rows `w` (`[r, cols]`, original column order) starting at row `r0`.
fn solve_rows(
    w: ArrayView2<f32>,
    u: &Array2<f32>,
    perm: &[usize],
    grid: &Grid,
    r0: usize,
    block_size: usize,
    scheme: &QuantScheme,
) -> ChunkOut {
    let (r, cols) = w.dim();
    let (lo, hi) = code_bounds(scheme);
    // Transposed and permuted: row `i` holds the `i`-th processed column of every row.
    let mut wt = Array2::from_shape_fn((cols, r), |(i, rr)| w[[rr, perm[i]]]);
    let mut codes = vec![0i32; r * cols];
    let per_row = grid.group.map_or(0, |g| cols.div_ceil(g));
    let mut groups = grid.dynamic.then(|| vec![(1.0f32, 0i32); r * per_row]);
    let mut loss = 0.0f64;
    let mut i1 = 0;
    while i1 < cols {
        let i2 = (i1 + block_size).min(cols);
        let mut err = Array2::<f32>::zeros((i2 - i1, r));
        for i in i1..i2 {
            let col = perm[i];
            if let (Some(gs), Some(g)) = (groups.as_mut(), grid.group)
                && i % g == 0
            {
                // Without act-order the processed order is the original order.
                let end = (i + g).min(cols);
                for rr in 0..r {
                    let seg = wt.slice(s![i..end, rr]);
                    let (l, h) =
                        seg.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &x| {
                            (l.min(x), h.max(x))
                        });
                    gs[rr * per_row + i / g] = fit_block(l, h, scheme);
                }
            }
            let d = u[[i, i]];
            for rr in 0..r {
                let (scale, zero) = match &groups {
                    Some(gs) => gs[rr * per_row + col / grid.group.unwrap_or(1)],
                    None => grid.fixed[grid.block(r0 + rr, col)],
                };
                let x = wt[[i, rr]];
                let q = ((x / scale).round() as i32 + zero).clamp(lo, hi);
                let deq = (q - zero) as f32 * scale;
                codes[rr * cols + col] = q;
                let e = (x - deq) / d;
                err[[i - i1, rr]] = e;
                loss += 0.5 * f64::from(e) * f64::from(e);
            }
            let e_row = err.row(i - i1).to_owned();
            for j in i + 1..i2 {
                let hij = u[[i, j]];
                wt.row_mut(j).scaled_add(-hij, &e_row);
            }
        }
        if i2 < cols {
            let (_, mut rest) = wt.view_mut().split_at(Axis(0), i2);
            general_mat_mul(-1.0, &u.slice(s![i1..i2, i2..]).t(), &err, 1.0, &mut rest);
        }
        i1 = i2;
    }
    ChunkOut { codes, groups, loss }
}
