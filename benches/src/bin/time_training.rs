//! Prints, as JSON lines, the time to train LeNet-300-100 for 40 epochs at batch 128 on
//! the embedded MNIST split; `compare_sklearn.py` runs it next to scikit-learn.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin time_training -- [repeats]
//! ```

fn main() -> deepcompress::Result<()> {
    let repeats: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let mnist = deepcompress::data::Mnist::embedded()?;
    for _ in 0..repeats {
        let (secs, acc) = deepcompress_benches::time_lenet_300_100(&mnist, 40)?;
        println!("{}", serde_json::json!({ "seconds": secs, "test_accuracy": acc }));
    }
    Ok(())
}
