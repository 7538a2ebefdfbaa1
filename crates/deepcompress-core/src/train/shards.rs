//! Data-parallel mini-batches: each batch is split into a fixed number of shards that
//! model replicas process at the same time, each with sequential kernels. This beats
//! splitting every small GEMM across threads (one synchronisation per step instead of
//! one per layer), and because the shard count is fixed and gradients are summed in
//! shard order, results do not depend on the thread count.

use super::cross_entropy;
use crate::Result;
use crate::data::Dataset;
use crate::layer::Mode;
use crate::model::Model;
use ndarray::ArrayD;
use rayon::prelude::*;

/// The replicas of a model for shards `1..n` (shard 0 runs on the model itself).
pub(crate) struct Shards {
    replicas: Vec<Model>,
}

impl Shards {
    /// `shards - 1` replicas of `model`, each with its own dropout stream.
    pub(crate) fn new(model: &Model, shards: usize, seed: u64) -> Self {
        let replicas = (1..shards.max(1))
            .map(|k| {
                let mut r = model.clone();
                r.reseed(seed ^ (0x9e37_79b9_7f4a_7c15u64.wrapping_mul(k as u64)));
                r
            })
            .collect();
        Self { replicas }
    }

    /// Forward and backward of one batch; leaves the gradient of the batch-mean loss in
    /// `model` and returns that loss.
    pub(crate) fn forward_backward(
        &mut self,
        model: &mut Model,
        data: &Dataset,
        batch: &[usize],
    ) -> Result<f32> {
        let n = batch.len();
        let shards = (self.replicas.len() + 1).min(n).max(1);
        let parts = split_even(batch, shards);
        let mut workers: Vec<&mut Model> =
            std::iter::once(model).chain(self.replicas.iter_mut()).take(shards).collect();
        let losses: Vec<Result<f32>> = workers
            .par_iter_mut()
            .zip(parts.par_iter())
            .map(|(m, idx)| {
                let (x, y) = data.batch(idx);
                m.zero_grad();
                let logits = m.forward(x, Mode::Train)?;
                let (loss, mut grad) = cross_entropy(&logits, &y)?;
                // Each shard's mean loss is weighted by its share of the batch.
                let w = idx.len() as f32 / n as f32;
                grad *= w;
                m.backward(grad)?;
                Ok(loss * w)
            })
            .collect();
        let mut total = 0.0;
        for l in losses {
            total += l?;
        }
        let (main, rest) = workers.split_first_mut().expect("at least one shard");
        for r in rest.iter() {
            let mut grads = Vec::new();
            r.for_each_param(|_, p| grads.push(p.grad()));
            let mut it = grads.into_iter();
            main.for_each_param_mut(|_, p| {
                *p.grad_mut() += it.next().expect("replicas share the structure")
            });
        }
        if !rest.is_empty() {
            average_buffers(main, rest);
        }
        Ok(total)
    }

    /// Copies the updated parameters and buffers of `model` into every replica.
    pub(crate) fn sync(&mut self, model: &mut Model) {
        if self.replicas.is_empty() {
            return;
        }
        let mut buffers = Vec::new();
        collect_buffers(model, &mut buffers);
        let mut values = Vec::new();
        model.for_each_param(|_, p| values.push(p.value()));
        for r in &mut self.replicas {
            let mut it = values.iter();
            r.for_each_param_mut(|_, p| p.value_mut().assign(*it.next().expect("same structure")));
            let mut bt = buffers.iter();
            r.for_each_buffer_mut(|_, b| b.assign(bt.next().expect("same structure")));
        }
    }
}

fn collect_buffers(model: &mut Model, out: &mut Vec<ArrayD<f32>>) {
    model.for_each_buffer_mut(|_, b| out.push(b.clone()));
}

/// Running statistics become the mean of the shards' running statistics.
fn average_buffers(main: &mut Model, rest: &mut [&mut Model]) {
    let mut sums = Vec::new();
    collect_buffers(main, &mut sums);
    if sums.is_empty() {
        return;
    }
    for r in rest.iter_mut() {
        let mut i = 0;
        r.for_each_buffer_mut(|_, b| {
            sums[i] += &*b;
            i += 1;
        });
    }
    let k = (rest.len() + 1) as f32;
    let mut it = sums.into_iter();
    main.for_each_buffer_mut(|_, b| *b = it.next().expect("same structure") / k);
}

/// `n` contiguous parts whose sizes differ by at most one.
fn split_even(items: &[usize], n: usize) -> Vec<&[usize]> {
    let (base, extra) = (items.len() / n, items.len() % n);
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 0..n {
        let len = base + usize::from(k < extra);
        out.push(&items[start..start + len]);
        start += len;
    }
    out
}
