//! When element-wise work is worth spreading over threads.

/// Element-wise loops below this length stay on one thread.
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// True for element-wise work of `len` values that should run in parallel: large enough,
/// and not already inside a rayon worker (where the outer loop owns the threads).
///
/// ```
/// use deepcompress_core::ops::worth_parallel;
/// assert!(!worth_parallel(100));
/// ```
pub fn worth_parallel(len: usize) -> bool {
    len >= PARALLEL_ELEMENTS
        && rayon::current_thread_index().is_none()
        && rayon::current_num_threads() > 1
}
