//! Writes the CSR-versus-dense benchmark matrices (4096 x 4096, the dense one and one per
//! sparsity) and inputs (batch 1 and 64) as raw little-endian f32, row-major, into a
//! directory, prints one JSON line per file, and with `repeats > 0` also times
//! deepcompress's dense and CSR `matmul` on them (median of `repeats`, one JSON line per
//! case). `compare_sparse.py` runs it and times scipy / numpy on the same files.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin sparse_weights -- <dir> [repeats]
//! ```

use deepcompress::tensor::{DenseTensor, Tensor};
use deepcompress_benches::median_secs;
use deepcompress_benches::sparse::{N, SPARSITIES, input, weight};
use deepcompress_prune::sparse::SparseTensor;
use std::hint::black_box;
use std::path::Path;

fn write(path: &Path, values: impl Iterator<Item = f32>) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.flat_map(f32::to_le_bytes).collect();
    std::fs::write(path, bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: sparse_weights <dir> [repeats]")?;
    let repeats: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(0);
    let dir = Path::new(&dir);
    std::fs::create_dir_all(dir)?;
    let xs: Vec<_> = [1usize, 64].iter().map(|&b| (b, input(N, b))).collect();
    for (b, x) in &xs {
        let file = format!("x_{b}.f32");
        write(&dir.join(&file), x.iter().copied())?;
        println!("{}", serde_json::json!({ "file": file, "rows": N, "cols": b }));
    }
    let dense = weight(N, 0.0);
    write(&dir.join("w_dense.f32"), dense.iter().copied())?;
    println!(
        "{}",
        serde_json::json!({ "file": "w_dense.f32", "rows": N, "cols": N, "sparsity": 0.0, "nnz": dense.iter().filter(|&&v| v != 0.0).count() })
    );
    let time = |kind: &str, s: f64, b: usize, secs: f64| {
        let line = serde_json::json!({ "impl": "deepcompress", "kind": kind, "sparsity": s, "batch": b, "seconds": secs });
        println!("{line}");
    };
    if repeats > 0 {
        let d = DenseTensor::new(dense.clone());
        for (b, x) in &xs {
            let secs = median_secs(repeats, || {
                black_box(d.matmul(x.view()).expect("shapes match"));
            });
            time("dense", 0.0, *b, secs);
        }
    }
    drop(dense);
    for s in SPARSITIES {
        let w = weight(N, s);
        let file = format!("w_{s}.f32");
        write(&dir.join(&file), w.iter().copied())?;
        let nnz = w.iter().filter(|&&v| v != 0.0).count();
        println!(
            "{}",
            serde_json::json!({ "file": file, "rows": N, "cols": N, "sparsity": s, "nnz": nnz })
        );
        if repeats > 0 {
            let csr = SparseTensor::from_dense(&w, 5)?;
            for (b, x) in &xs {
                let secs = median_secs(repeats, || {
                    black_box(csr.matmul(x.view()).expect("shapes match"));
                });
                time("csr", s, *b, secs);
            }
        }
    }
    Ok(())
}
