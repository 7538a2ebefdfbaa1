//! Writes the k-means benchmark weights (1,000,000 f32, little-endian, seed 42) to a file
//! and prints, as JSON lines, the time and squared error of Lloyd (linear initialisation)
//! and of the exact DP with k = 32 on them; `compare_kmeans.py` runs it next to
//! scikit-learn on the same file.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin kmeans_weights -- <path> [repeats]
//! ```

use deepcompress_prune::sharing::{Init, KMeans, kmeans_exact};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "kmeans_weights.f32".to_string());
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let w = deepcompress_benches::weights::trained_like(1_000_000, 42);
    let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&path, bytes)?;
    for _ in 0..repeats {
        let t = Instant::now();
        let lloyd = KMeans::new(32).with_init(Init::Linear).fit(&w)?;
        let secs = t.elapsed().as_secs_f64();
        let line = serde_json::json!({ "method": "lloyd-linear", "seconds": secs, "sse": lloyd.sse, "iterations": lloyd.iterations });
        println!("{line}");
        let t = Instant::now();
        let exact = kmeans_exact(&w, 32)?;
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{}",
            serde_json::json!({ "method": "exact-dp", "seconds": secs, "sse": exact.sse })
        );
    }
    Ok(())
}
