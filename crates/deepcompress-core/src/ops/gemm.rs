//! Dense f32 matrix multiplication on faer's kernels.
//!
//! ndarray's own `dot` is single-threaded; faer's GEMM uses AVX2/AVX-512 micro-kernels
//! and rayon, which is what makes training on two cores competitive with OpenBLAS.

use faer::{Accum, MatMut, MatRef, Par};
use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// Below this many multiply-adds the threading overhead outweighs the gain.
const PARALLEL_MACS: usize = 1 << 18;

fn view<'a>(a: &ArrayView2<'a, f32>) -> MatRef<'a, f32> {
    let s = a.strides();
    // SAFETY: the pointer, shape and strides come from a live ndarray view of the same
    // lifetime, so every index faer reads is inside that view.
    unsafe { MatRef::from_raw_parts(a.as_ptr(), a.nrows(), a.ncols(), s[0], s[1]) }
}

fn view_mut<'a>(a: &'a mut ArrayViewMut2<f32>) -> MatMut<'a, f32> {
    let (r, c) = a.dim();
    let s = a.strides().to_vec();
    // SAFETY: as above, and the mutable view is borrowed exclusively for 'a.
    unsafe { MatMut::from_raw_parts_mut(a.as_mut_ptr(), r, c, s[0], s[1]) }
}

/// `c = alpha * a b + (if accumulate { c } else { 0 })`.
///
/// Shapes must agree (`a: [m, k]`, `b: [k, n]`, `c: [m, n]`); this is an internal kernel,
/// callers check shapes and report errors with the layer's name.
///
/// # Panics
/// When the shapes do not agree.
///
/// ```
/// use deepcompress_core::ops::gemm;
/// use ndarray::{array, Array2};
/// let a = array![[1.0f32, 2.0], [3.0, 4.0]];
/// let mut c = Array2::<f32>::ones((2, 2));
/// gemm(1.0, a.view(), a.view(), true, c.view_mut());
/// assert_eq!(c, array![[8.0, 11.0], [16.0, 23.0]]);
/// ```
pub fn gemm(
    alpha: f32,
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    accumulate: bool,
    mut c: ArrayViewMut2<f32>,
) {
    assert_eq!(a.ncols(), b.nrows(), "gemm inner dimensions");
    assert_eq!((a.nrows(), b.ncols()), c.dim(), "gemm output shape");
    if c.is_empty() {
        return;
    }
    let macs = a.nrows() * a.ncols() * b.ncols();
    // Inside a rayon worker (for example a per-image convolution loop) stay sequential:
    // the outer loop already owns the threads.
    let nested = rayon::current_thread_index().is_some();
    let par = if macs >= PARALLEL_MACS && !nested && rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    };
    let accum = if accumulate { Accum::Add } else { Accum::Replace };
    faer::linalg::matmul::matmul(view_mut(&mut c), accum, view(&a), view(&b), alpha, par);
}

/// `a b` as a new array.
///
/// ```
/// use deepcompress_core::ops::matmul;
/// use ndarray::array;
/// let a = array![[1.0f32, 2.0]];
/// let b = array![[3.0f32], [4.0]];
/// assert_eq!(matmul(a.view(), b.view()), array![[11.0]]);
/// ```
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    gemm(1.0, a, b, false, c.view_mut());
    c
}

/// `a bᵀ` as a new array (the Linear forward `x Wᵀ`).
///
/// ```
/// use deepcompress_core::ops::matmul_nt;
/// use ndarray::array;
/// let x = array![[1.0f32, 2.0]];
/// let w = array![[3.0f32, 4.0], [5.0, 6.0]];
/// assert_eq!(matmul_nt(x.view(), w.view()), array![[11.0, 17.0]]);
/// ```
pub fn matmul_nt(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    matmul(a, b.t())
}

/// `aᵀ b` as a new array (the weight gradient `gᵀ x`).
///
/// ```
/// use deepcompress_core::ops::matmul_tn;
/// use ndarray::array;
/// let g = array![[1.0f32], [2.0]];
/// let x = array![[3.0f32, 4.0], [5.0, 6.0]];
/// assert_eq!(matmul_tn(g.view(), x.view()), array![[13.0, 16.0]]);
/// ```
pub fn matmul_tn(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    matmul(a.t(), b)
}
