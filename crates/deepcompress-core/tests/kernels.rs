//! Properties of the numeric kernels and the core tensor encodings.

use deepcompress_core::ops::{ConvGeometry, col2im_add, im2col, matmul};
use deepcompress_core::tensor::{DenseTensor, HalfTensor, Tensor};
use ndarray::{Array2, Array3, ArrayD};
use proptest::prelude::*;

fn geometry() -> impl Strategy<Value = ConvGeometry> {
    (1usize..3, 3usize..8, 3usize..8, 1usize..4, 1usize..4, 1usize..3, 0usize..3, 1usize..3)
        .prop_filter_map(
            "kernel must fit",
            |(channels, h, w, kh, kw, stride, padding, dilation)| {
                let g = ConvGeometry {
                    channels,
                    in_hw: (h, w),
                    kernel: (kh, kw),
                    stride: (stride, stride),
                    padding: (padding, padding),
                    dilation: (dilation, dilation),
                };
                g.out_hw().map(|_| g)
            },
        )
}

proptest! {
    /// col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>.
    #[test]
    fn col2im_is_the_adjoint_of_im2col(g in geometry(), seed in 0u32..1000) {
        let (oh, ow) = g.out_hw().unwrap();
        let f = |i: usize| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1000) as f32 / 500.0 - 1.0;
        let x = Array3::from_shape_fn((g.channels, g.in_hw.0, g.in_hw.1), |(a, b, c)| f(a * 97 + b * 13 + c));
        let c = Array2::from_shape_fn((g.col_rows(), oh * ow), |(a, b)| f(a * 31 + b * 7 + 5));
        let mut cols = Array2::zeros((g.col_rows(), oh * ow));
        im2col(x.view(), &g, cols.view_mut());
        let mut back = Array3::zeros(x.raw_dim());
        col2im_add(c.view(), &g, back.view_mut());
        let lhs: f64 = cols.iter().zip(c.iter()).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
        let rhs: f64 = x.iter().zip(back.iter()).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
        prop_assert!((lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()), "{} vs {}", lhs, rhs);
    }

    /// The f16 encoding multiplies exactly like its decoded dense weight, and stores
    /// exactly 16 bits per value.
    #[test]
    fn half_tensor_matmul_matches_decoded_weight(m in 1usize..9, n in 1usize..9, k in 1usize..5, seed in 0u32..100) {
        let w = ArrayD::from_shape_fn(vec![m, n], |d| ((d[0] * 7 + d[1] * 3) as u32 ^ seed) as f32 / 17.0 - 2.0);
        let x = Array2::from_shape_fn((n, k), |(a, b)| (a + 2 * b) as f32 / 5.0);
        let h = HalfTensor::from_f32(&w);
        prop_assert_eq!(h.storage_bits(), (m * n * 16) as u64);
        let dense = h.to_dense().into_shape_with_order((m, n)).unwrap();
        let want = matmul(dense.view(), x.view());
        let got = h.matmul(x.view()).unwrap();
        prop_assert!((&want - &got).iter().all(|d| d.abs() < 1e-4));
        let err = (&w - &h.to_dense()).iter().fold(0.0f32, |a, d| a.max(d.abs()));
        prop_assert!(err <= 2.0f32.powi(-10) * 3.0, "f16 rounding error {}", err);
    }
}

#[test]
fn dense_tensor_counts_bits_and_nonzeros_and_checks_shapes() {
    let w = DenseTensor::new(
        ArrayD::from_shape_vec(vec![2, 1, 2, 2], vec![0.0, 1.0, 0.0, 2.0, 3.0, 0.0, 0.0, 0.0])
            .unwrap(),
    );
    assert_eq!((w.storage_bits(), w.nonzeros(), w.numel()), (8 * 32, 3, 8));
    let y = w.matmul(Array2::ones((4, 3)).view()).unwrap();
    assert_eq!(y, ndarray::array![[3.0f32, 3.0, 3.0], [3.0, 3.0, 3.0]]);
    let err = w.matmul(Array2::ones((5, 1)).view()).unwrap_err();
    assert!(err.to_string().contains("[4, n]"), "{err}");
}

#[test]
fn compressed_conv2d_matches_the_dense_convolution() {
    use deepcompress_core::layer::{CompressedConv2d, Conv2d, Conv2dConfig, Layer, Mode};
    let cfg = Conv2dConfig::new(3, 5, 3).stride(2).padding(1).dilation(1);
    let mut conv = Conv2d::new(cfg, 4).unwrap();
    let bias = conv.bias.as_ref().map(|b| b.value().clone().into_dimensionality().unwrap());
    let w = DenseTensor::new(conv.weight.value().clone());
    let mut packed = CompressedConv2d::new(conv.config, Box::new(w), bias).unwrap();
    let x = ArrayD::from_shape_fn(vec![5, 3, 9, 8], |d| {
        ((d[0] * 7 + d[1] * 5 + d[2] * 3 + d[3]) % 11) as f32 / 11.0
    });
    let (a, b) =
        (conv.forward(x.clone(), Mode::Eval).unwrap(), packed.forward(x, Mode::Eval).unwrap());
    assert_eq!(a.shape(), b.shape());
    assert!((&a - &b).iter().all(|d| d.abs() < 1e-5));
    assert_eq!(packed.cost(&[1, 3, 9, 8]).unwrap(), conv.cost(&[1, 3, 9, 8]).unwrap());
    // Grouped kernels and wrong shapes are refused with typed errors.
    let grouped = Conv2dConfig::new(4, 4, 3).groups(2);
    let gw = DenseTensor::new(ArrayD::zeros(vec![4, 2, 3, 3]));
    assert!(CompressedConv2d::new(grouped, Box::new(gw), None).is_err());
    let bad = DenseTensor::new(ArrayD::zeros(vec![5, 3, 2, 2]));
    assert!(CompressedConv2d::new(cfg, Box::new(bad), None).is_err());
    assert!(packed.forward(ArrayD::zeros(vec![1, 2, 9, 8]), Mode::Eval).is_err());
}
