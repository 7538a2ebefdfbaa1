//! GPTQ (Frantar et al. 2022, arXiv 2210.17323) against round-to-nearest under the same
//! scheme (symmetric, one scale per output channel) at 3 and 4 bits: prints a Markdown
//! table of the relative output error `||(W - Q) X||_F / ||W X||_F` on held-out inputs for
//! every layer of LeNet-300-100 and LeNet-5 (trained briefly on the embedded MNIST) and
//! for 768x768 and 3072x768 random-plus-structured matrices with correlated, partly
//! heavy-tailed activations; and the time GPTQ takes on each weight.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin gptq_table
//! ```

#[path = "../../../crates/deepcompress-quant/tests/common/synthetic.rs"]
#[allow(dead_code)]
mod synthetic;

use deepcompress::data::{MNIST_MEAN, MNIST_STD, Mnist};
use deepcompress::layer::{Conv2d, Linear};
use deepcompress::models::{lenet_300_100, lenet5};
use deepcompress::ops::{ConvGeometry, im2col};
use deepcompress::quant::gptq::{GptqConfig, Hessian, gptq_quantize};
use deepcompress::quant::{Granularity, QuantScheme, QuantTensor};
use deepcompress::train::{Adam, TrainConfig, Trainer, evaluate};
use deepcompress::{Model, Tensor};
use ndarray::{Array2, ArrayD, Axis, Ix2, Ix4, concatenate};
use std::time::Instant;
use synthetic::{activations, relative_output_error, structured_weight};

/// One weight to compare: `[out, in]`, calibration and held-out inputs as rows.
struct Case {
    name: String,
    w: Array2<f32>,
    calib: Array2<f32>,
    held_out: Array2<f32>,
}

/// Im2col patches of `x` (`[n, c, h, w]`) as rows `[n*oh*ow, c*kh*kw]`.
fn patches(x: &ArrayD<f32>, conv: &Conv2d) -> Array2<f32> {
    let x = x.view().into_dimensionality::<Ix4>().expect("conv input");
    let (_, c, h, w) = x.dim();
    let cfg = &conv.config;
    let geo = ConvGeometry {
        channels: c,
        in_hw: (h, w),
        kernel: cfg.kernel,
        stride: cfg.stride,
        padding: cfg.padding,
        dilation: cfg.dilation,
    };
    let (oh, ow) = geo.out_hw().expect("kernel fits");
    let mut cols = Array2::zeros((geo.col_rows(), oh * ow));
    let mut all = Vec::new();
    for img in x.axis_iter(Axis(0)) {
        im2col(img, &geo, cols.view_mut());
        all.push(cols.t().to_owned());
    }
    let views: Vec<_> = all.iter().map(|a| a.view()).collect();
    concatenate(Axis(0), &views).expect("same widths")
}

fn lenet_cases(
    name: &str,
    model: &mut Model,
    paths: &[&str],
    calib: &ArrayD<f32>,
    held_out: &ArrayD<f32>,
) -> Vec<Case> {
    let seen = model.capture_inputs(paths, calib, 250).expect("capture");
    let held = model.capture_inputs(paths, held_out, 250).expect("capture");
    paths
        .iter()
        .map(|&p| {
            let (w, c, h) = if let Ok(fc) = model.layer_as::<Linear>(p) {
                let w = fc.weight.value().clone().into_dimensionality::<Ix2>().expect("2-D");
                let rows = |a: &ArrayD<f32>| a.clone().into_dimensionality::<Ix2>().expect("rows");
                (w, rows(&seen[p]), rows(&held[p]))
            } else {
                let conv = model.layer_as::<Conv2d>(p).expect("Linear or Conv2d");
                let v = conv.weight.value();
                let w = Array2::from_shape_vec(
                    (v.shape()[0], v.len() / v.shape()[0]),
                    v.iter().copied().collect(),
                )
                .expect("kernel as matrix");
                (w, patches(&seen[p], conv), patches(&held[p], conv))
            };
            Case { name: format!("{name} {p}"), w, calib: c, held_out: h }
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mnist = Mnist::embedded()?;
    let train = mnist.train.take(4000).normalize(MNIST_MEAN, MNIST_STD)?;
    let test = mnist.test.take(1000).normalize(MNIST_MEAN, MNIST_STD)?;
    let calib = train.take(512).inputs;
    let mut cases = Vec::new();
    for (name, model, paths) in [
        ("LeNet-300-100", lenet_300_100(0), vec!["fc1", "fc2", "fc3"]),
        ("LeNet-5", lenet5(0), vec!["conv1", "conv2", "fc1", "fc2"]),
    ] {
        let mut model = model;
        let cfg = TrainConfig { epochs: 3, batch_size: 64, ..TrainConfig::default() };
        Trainer::new(cfg).fit(&mut model, &mut Adam::default(), &train, None, |_| {})?;
        let acc = evaluate(&mut model, &test, 500)?.accuracy;
        eprintln!("{name}: test accuracy {:.2}% after 3 epochs on 4000 images", 100.0 * acc);
        cases.extend(lenet_cases(name, &mut model, &paths, &calib, &test.inputs));
    }
    let calib_x = activations(1024, 768, 1, 1);
    let held_x = activations(1024, 768, 1, 2);
    for (rows, seed) in [(768, 10), (3072, 11)] {
        cases.push(Case {
            name: format!("structured {rows}x768"),
            w: structured_weight(rows, 768, seed),
            calib: calib_x.clone(),
            held_out: held_x.clone(),
        });
    }

    println!(
        "| weight | shape | calib. vectors | RTN 3-bit | GPTQ 3-bit | RTN 4-bit | GPTQ 4-bit | GPTQ time (4-bit) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for c in &cases {
        let h = Hessian::from_rows(c.calib.view(), &c.name)?;
        let mut cells = Vec::new();
        let mut secs = 0.0;
        for bits in [3, 4] {
            let scheme = QuantScheme::new(bits);
            let w = c.w.clone().into_dyn();
            let rtn = QuantTensor::quantize(&w, &scheme)?;
            let t = Instant::now();
            let g = gptq_quantize(&w, h.matrix().view(), &scheme, &GptqConfig::default())?;
            secs = t.elapsed().as_secs_f64();
            let dense = |q: &QuantTensor| q.to_dense().into_dimensionality::<Ix2>().expect("2-D");
            cells.push(relative_output_error(&c.w, &dense(&rtn), &c.held_out));
            cells.push(relative_output_error(&c.w, &dense(&g.tensor), &c.held_out));
        }
        println!(
            "| {} | {}x{} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.3} s |",
            c.name,
            c.w.nrows(),
            c.w.ncols(),
            c.calib.nrows(),
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            secs
        );
    }
    println!();
    println!("Groups of 128 inputs (one scale per row and group), structured matrices:");
    println!();
    println!("| weight | bits | RTN | GPTQ | GPTQ act-order |");
    println!("|---|---|---|---|---|");
    for c in cases.iter().filter(|c| c.name.starts_with("structured")) {
        let h = Hessian::from_rows(c.calib.view(), &c.name)?;
        let w = c.w.clone().into_dyn();
        let dense = |q: &QuantTensor| q.to_dense().into_dimensionality::<Ix2>().expect("2-D");
        for bits in [3, 4] {
            let scheme =
                QuantScheme::new(bits).granularity(Granularity::PerGroup { rows: 1, cols: 128 });
            let rtn = QuantTensor::quantize(&w, &scheme)?;
            let plain = gptq_quantize(&w, h.matrix().view(), &scheme, &GptqConfig::default())?;
            let act = GptqConfig::default().act_order(true);
            let ordered = gptq_quantize(&w, h.matrix().view(), &scheme, &act)?;
            println!(
                "| {} | {bits} | {:.4} | {:.4} | {:.4} |",
                c.name,
                relative_output_error(&c.w, &dense(&rtn), &c.held_out),
                relative_output_error(&c.w, &dense(&plain.tensor), &c.held_out),
                relative_output_error(&c.w, &dense(&ordered.tensor), &c.held_out)
            );
        }
    }
    Ok(())
}
