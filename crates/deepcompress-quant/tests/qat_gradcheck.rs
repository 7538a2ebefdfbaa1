//! Gradient checks for the QAT layers. Where the forward pass is piecewise linear (PACT
//! without quantization, the input and bias of an LSQ layer) the analytic gradients must
//! match central differences of the layer itself. Through a rounding, the
//! straight-through estimator and LSQ's step gradient are by definition the derivatives
//! of the surrogate in which each rounding residual `round(v/s) - v/s` is held constant
//! (Esser et al. 2019, eq. 3); those gradients must match central differences of that
//! surrogate, computed here independently of the layer code.

use deepcompress_core::layer::{Layer, Linear, Mode};
use deepcompress_quant::{LsqActivation, LsqWeight, Pact};
use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn close(analytic: f32, numeric: f64, what: &str) {
    let (a, n) = (analytic as f64, numeric);
    let tol = 2e-3 + 2e-2 * a.abs().max(n.abs());
    assert!((a - n).abs() <= tol, "{what}: analytic {a} vs numeric {n}");
}

fn dot(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f64 {
    a.iter().zip(b.iter()).map(|(x, y)| *x as f64 * *y as f64).sum()
}

/// Which piece of the LSQ quantizer a value is on, with its frozen rounding residual.
#[derive(Clone, Copy)]
enum Piece {
    Low,
    High,
    Inside(f32),
}

fn piece(v: f32, s: f32, qn: f32, qp: f32) -> Piece {
    let r = v / s;
    if r <= -qn {
        Piece::Low
    } else if r >= qp {
        Piece::High
    } else {
        Piece::Inside(r.round() - r)
    }
}

/// The straight-through surrogate of `clamp(round(v/s)) · s`.
fn surrogate(p: Piece, v: f64, s: f64, qn: f64, qp: f64) -> f64 {
    match p {
        Piece::Low => -qn * s,
        Piece::High => qp * s,
        Piece::Inside(c) => v + c as f64 * s,
    }
}

/// Values whose `v/s` stays away from the clipping ends under a small perturbation.
fn values(n: usize, s: f32, lo: f32, hi: f32, qn: f32, qp: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::new();
    while out.len() < n {
        let v: f32 = rng.random_range(lo..hi);
        let r = v / s;
        if (r + qn).abs() > 0.2 && (r - qp).abs() > 0.2 && r.abs() > 0.2 {
            out.push(v);
        }
    }
    out
}

#[test]
fn lsq_activation_step_and_input_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for (bits, signed) in [(3u8, false), (4, true), (2, false)] {
        let (qn, qp) = if signed {
            ((1 << (bits - 1)) as f32, ((1 << (bits - 1)) - 1) as f32)
        } else {
            (0.0, ((1 << bits) - 1) as f32)
        };
        let s = 0.3f32;
        let x =
            ArrayD::from_shape_vec(vec![4, 6], values(24, s, -3.0, 3.0, qn, qp, &mut rng)).unwrap();
        let r = ArrayD::from_shape_simple_fn(vec![4, 6], || rng.random_range(-1.0f32..1.0));
        let mut layer = LsqActivation::new(bits, signed).unwrap().with_step(s).unwrap();
        layer.forward(x.clone(), Mode::Train).unwrap();
        let dx = layer.backward(r.clone(), true).unwrap().unwrap();
        let ds = layer.params()[0].1.grad()[0];
        let pieces: Vec<Piece> = x.iter().map(|&v| piece(v, s, qn, qp)).collect();
        let loss = |xs: &ArrayD<f32>, s: f64| -> f64 {
            xs.iter()
                .zip(&pieces)
                .zip(r.iter())
                .map(|((&v, &p), &g)| g as f64 * surrogate(p, v as f64, s, qn as f64, qp as f64))
                .sum()
        };
        let eps = 1e-3f64;
        let num = (loss(&x, s as f64 + eps) - loss(&x, s as f64 - eps)) / (2.0 * eps);
        // LSQ scales the step gradient by 1/sqrt(N·Qp), N = 6 features per sample.
        close(ds, num / (6.0 * qp as f64).sqrt(), &format!("{bits}-bit step"));
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.as_slice_mut().unwrap()[k] += 1e-3;
            xm.as_slice_mut().unwrap()[k] -= 1e-3;
            let num = (loss(&xp, s as f64) - loss(&xm, s as f64)) / 2e-3;
            close(dx.as_slice().unwrap()[k], num, &format!("{bits}-bit input[{k}]"));
        }
    }
}

#[test]
fn pact_clip_gradients_match_finite_differences() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let alpha = 1.0f32;
    // Away from the kinks at 0 and alpha.
    let v: Vec<f32> = (0..30)
        .map(|_| {
            loop {
                let v: f32 = rng.random_range(-2.0..3.0);
                if v.abs() > 0.05 && (v - alpha).abs() > 0.05 {
                    break v;
                }
            }
        })
        .collect();
    let x = ArrayD::from_shape_vec(vec![5, 6], v).unwrap();
    let r = ArrayD::from_shape_simple_fn(vec![5, 6], || rng.random_range(-1.0f32..1.0));
    let proto = Pact::new(alpha, None, 0.0).unwrap();
    let mut layer = proto.clone();
    layer.forward(x.clone(), Mode::Train).unwrap();
    let dx = layer.backward(r.clone(), true).unwrap().unwrap();
    let da = layer.params()[0].1.grad()[0];
    let loss = |a: f32, xs: &ArrayD<f32>| {
        let mut l = Pact::new(a, None, 0.0).unwrap();
        dot(&l.forward(xs.clone(), Mode::Eval).unwrap(), &r)
    };
    let eps = 1e-2f32;
    close(da, (loss(alpha + eps, &x) - loss(alpha - eps, &x)) / (2.0 * eps as f64), "alpha");
    for k in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.as_slice_mut().unwrap()[k] += eps;
        xm.as_slice_mut().unwrap()[k] -= eps;
        let num = (loss(alpha, &xp) - loss(alpha, &xm)) / (2.0 * eps as f64);
        close(dx.as_slice().unwrap()[k], num, &format!("input[{k}]"));
    }
    // Quantized, the alpha gradient is still the paper's: the count of clipped inputs
    // weighted by their output gradient.
    let mut q = Pact::new(alpha, Some(3), 0.0).unwrap();
    q.forward(x.clone(), Mode::Train).unwrap();
    q.backward(r.clone(), false).unwrap();
    let expected: f32 = x.iter().zip(r.iter()).filter(|(v, _)| **v >= alpha).map(|(_, g)| g).sum();
    assert!((q.params()[0].1.grad()[0] - expected).abs() < 1e-5);
}

#[test]
fn lsq_linear_gradients() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for per_channel in [false, true] {
        let (out, inp, bits) = (5usize, 7usize, 3u8);
        let qp = 3.0f32;
        let mut fc = Linear::new(inp, out, true, 9);
        // Two weights far outside the initial range, to be clipped.
        fc.weight.value_mut()[[0, 0]] = 2.0;
        fc.weight.value_mut()[[1, 1]] = -2.0;
        let layer = LsqWeight::new(Box::new(fc), bits, per_channel).unwrap();
        let steps = layer.steps().to_vec();
        let w0 = layer.weight().value().clone();
        let x = ArrayD::from_shape_simple_fn(vec![3, inp], || rng.random_range(-1.0f32..1.0));
        let r = ArrayD::from_shape_simple_fn(vec![3, out], || rng.random_range(-1.0f32..1.0));
        let mut l = layer.clone();
        l.forward(x.clone(), Mode::Train).unwrap();
        let dx = l.backward(r.clone(), true).unwrap().unwrap();
        let grads: Vec<(String, ArrayD<f32>)> =
            l.params().iter().map(|(n, p)| (n.to_string(), p.grad().clone())).collect();
        let grad = |name: &str| grads.iter().find(|(n, _)| n == name).unwrap().1.clone();
        // Input and bias: the quantized weight is constant, so differences of the layer.
        let eval = |layer: &LsqWeight, xs: &ArrayD<f32>| {
            let mut l = layer.clone();
            dot(&l.forward(xs.clone(), Mode::Eval).unwrap(), &r)
        };
        let eps = 1e-2f32;
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp.as_slice_mut().unwrap()[k] += eps;
            xm.as_slice_mut().unwrap()[k] -= eps;
            let num = (eval(&layer, &xp) - eval(&layer, &xm)) / (2.0 * eps as f64);
            close(dx.as_slice().unwrap()[k], num, "input");
        }
        let gb = grad("bias");
        for k in 0..out {
            let bump = |d: f32| {
                let mut l2 = layer.clone();
                for (n, p) in l2.params_mut() {
                    if n == "bias" {
                        p.value_mut()[k] += d;
                    }
                }
                eval(&l2, &x)
            };
            close(gb[k], (bump(eps) - bump(-eps)) / (2.0 * eps as f64), "bias");
        }
        // Weight and step: the straight-through surrogate ŵ(w, s).
        let cols = if per_channel { inp } else { inp * out };
        let pieces: Vec<Piece> =
            w0.iter().enumerate().map(|(k, &v)| piece(v, steps[k / cols], qp, qp)).collect();
        let bias = layer.params().iter().find(|(n, _)| *n == "bias").unwrap().1.value().clone();
        let sur_loss = |w: &ArrayD<f32>, s: &[f64]| -> f64 {
            let wq: Vec<f64> = w
                .iter()
                .enumerate()
                .map(|(k, &v)| surrogate(pieces[k], v as f64, s[k / cols], qp as f64, qp as f64))
                .collect();
            let mut total = 0.0;
            for b in 0..3 {
                for o in 0..out {
                    let mut y = bias[o] as f64;
                    for i in 0..inp {
                        y += wq[o * inp + i] * x[[b, i]] as f64;
                    }
                    total += y * r[[b, o]] as f64;
                }
            }
            total
        };
        let s64: Vec<f64> = steps.iter().map(|&s| s as f64).collect();
        let gw = grad("weight");
        for k in 0..w0.len() {
            let (mut wp, mut wm) = (w0.clone(), w0.clone());
            wp.as_slice_mut().unwrap()[k] += 1e-3;
            wm.as_slice_mut().unwrap()[k] -= 1e-3;
            let num = (sur_loss(&wp, &s64) - sur_loss(&wm, &s64)) / 2e-3;
            close(gw.as_slice().unwrap()[k], num, &format!("weight[{k}]"));
        }
        let gs = grad("weight_step");
        for c in 0..steps.len() {
            let (mut sp, mut sm) = (s64.clone(), s64.clone());
            sp[c] += 1e-4;
            sm[c] -= 1e-4;
            let num = (sur_loss(&w0, &sp) - sur_loss(&w0, &sm)) / 2e-4;
            close(gs[c], num / (cols as f64 * qp as f64).sqrt(), &format!("step[{c}]"));
        }
    }
}

#[test]
fn lsq_conv_matches_a_conv_with_the_quantized_kernel() {
    use deepcompress_core::layer::{Conv2d, Conv2dConfig};
    let conv = Conv2d::new(Conv2dConfig::new(2, 3, 3), 4).unwrap();
    let mut q = LsqWeight::new(Box::new(conv.clone()), 4, true).unwrap();
    let stored = q.quantized().unwrap();
    let mut plain = conv;
    plain.weight.set_value(deepcompress_core::tensor::Tensor::to_dense(&stored));
    let x = ArrayD::from_shape_fn(vec![2, 2, 6, 6], |i| {
        ((i[1] * 7 + i[2] * 3 + i[3]) % 5) as f32 - 2.0
    });
    let a = q.forward(x.clone(), Mode::Eval).unwrap();
    let b = plain.forward(x, Mode::Eval).unwrap();
    assert!((&a - &b).iter().all(|d| d.abs() < 1e-5));
    assert_eq!(q.kind(), "LsqConv2d");
}
