//! Times the full SVD and the randomized SVD (rank 64) of the low-rank benchmark matrices
//! (2048x2048 and 4096x1024, see `deepcompress_benches::lowrank::weight_like`) and
//! prints, as JSON lines, the seconds and the Frobenius error of each rank-64
//! approximation relative to the optimal one; then the same for Tucker-2 of a
//! 256x256x3x3 kernel to ranks (64, 64), HOSVD only and with HOOI. With a path argument it
//! also writes the inputs there (raw little-endian f32, row-major) for `compare_lowrank.py`.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin lowrank_svd -- [dir] [repeats]
//! ```

use deepcompress::core::linalg;
use deepcompress_benches::lowrank::weight_like;
use deepcompress_lowrank::conv::{Tucker2Config, tucker2};
use deepcompress_lowrank::svd::RandomizedSvd;
use ndarray::{Array2, s};
use std::time::Instant;

const RANK: usize = 64;

fn frob(a: &Array2<f32>) -> f64 {
    a.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next();
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    for (m, n) in [(2048, 2048), (4096, 1024)] {
        let a = weight_like(m, n, 7);
        if let Some(d) = &dir {
            let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            std::fs::write(format!("{d}/weight_{m}x{n}.f32"), bytes)?;
        }
        let mut optimal = 0.0;
        for _ in 0..repeats {
            let t = Instant::now();
            let full = linalg::svd(a.view())?;
            let secs = t.elapsed().as_secs_f64();
            optimal = full.s.iter().skip(RANK).map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            let line = serde_json::json!({"shape": [m, n], "method": "full-svd", "backend": linalg::backend(), "seconds": secs, "error_ratio": 1.0, "optimal_error": optimal});
            println!("{line}");
            // Sanity: the top-64 truncation of the full SVD has exactly the optimal error.
            let top = linalg::Svd {
                u: full.u.slice(s![.., ..RANK]).to_owned(),
                s: full.s.slice(s![..RANK]).to_owned(),
                vt: full.vt.slice(s![..RANK, ..]).to_owned(),
            };
            let err = frob(&(&a - &top.reconstruct()));
            assert!((err - optimal).abs() < 1e-3 * optimal, "{err} vs {optimal}");
        }
        // Our default (2 power iterations), and 7 as scikit-learn's default uses here.
        for (method, power_iters) in [("randomized-svd", 2), ("randomized-svd-q7", 7)] {
            let settings = RandomizedSvd { power_iters, ..RandomizedSvd::default() };
            for _ in 0..repeats {
                let t = Instant::now();
                let r = settings.compute(a.view(), RANK)?;
                let secs = t.elapsed().as_secs_f64();
                let err = frob(&(&a - &r.reconstruct()));
                let line = serde_json::json!({"shape": [m, n], "method": method, "seconds": secs, "error_ratio": err / optimal});
                println!("{line}");
            }
        }
    }
    let kernel = weight_like(256, 256 * 9, 13).into_shape_with_order((256, 256, 3, 3))?;
    if let Some(d) = &dir {
        let bytes: Vec<u8> = kernel.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(format!("{d}/kernel_256x256x3x3.f32"), bytes)?;
    }
    for (label, sweeps) in [("tucker2 HOSVD", 0), ("tucker2 HOOI", 100)] {
        for _ in 0..repeats {
            let t = Instant::now();
            let f = tucker2(kernel.view(), &Tucker2Config::new(64, 64).max_iters(sweeps))?;
            let secs = t.elapsed().as_secs_f64();
            let line = serde_json::json!({"method": "tucker2", "label": label, "seconds": secs, "relative_error": f.relative_error, "sweeps": f.error_history.len()});
            println!("{line}");
        }
    }
    Ok(())
}
