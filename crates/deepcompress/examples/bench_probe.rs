//! Local experiment (not committed).
use deepcompress::data::Mnist;
use deepcompress::models::lenet_300_100;
use deepcompress::train::{Adam, TrainConfig, Trainer};
use std::time::Instant;
fn main() {
    let mnist = Mnist::embedded().unwrap();
    let mut m = lenet_300_100(0);
    let cfg = TrainConfig { epochs: 10, batch_size: 128, ..TrainConfig::default() };
    let t = Instant::now();
    Trainer::new(cfg).fit(&mut m, &mut Adam::default(), &mnist.train, None, |_| {}).unwrap();
    println!("10 epochs: {:.2} s", t.elapsed().as_secs_f64());
}
