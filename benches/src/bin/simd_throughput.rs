//! How many AVX2 multiply-type instructions this CPU retires per nanosecond, alone and
//! mixed: the ceiling of an exact int8 GEMM without VNNI. Each loop runs 8 independent
//! chains of one instruction (or two kinds alternating), so throughput, not latency,
//! decides. If two kinds mixed run no faster than either alone, they share execution
//! ports.
//!
//! ```text
//! cargo run --release -p deepcompress-benches --bin simd_throughput
//! ```

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `n` rounds of `M` chains of `main` plus `E` chains of `extra`: with `M = 8`
    /// the main chains alone keep their instruction's ports busy, so if adding the extra
    /// chains slows the loop down, the two kinds share ports.
    #[inline(always)]
    fn chains<const M: usize, const E: usize>(
        n: usize,
        main: impl Fn(__m256i) -> __m256i,
        extra: impl Fn(__m256i) -> __m256i,
    ) -> __m256i {
        // SAFETY (all intrinsics here): only called from functions compiled for AVX2,
        // after it was detected.
        let mut a: [__m256i; M] =
            std::array::from_fn(|i| unsafe { _mm256_set1_epi16(i as i16 + 1) });
        let mut b: [__m256i; E] =
            std::array::from_fn(|i| unsafe { _mm256_set1_epi16(i as i16 + 2) });
        for _ in 0..n {
            for x in a.iter_mut() {
                *x = main(*x);
            }
            for x in b.iter_mut() {
                *x = extra(*x);
            }
        }
        a.iter()
            .chain(&b)
            .fold(unsafe { _mm256_setzero_si256() }, |s, x| unsafe { _mm256_xor_si256(s, *x) })
    }

    macro_rules! kernel {
        ($name:ident, $m:expr, $e:expr, $main:expr, $extra:expr) => {
            #[target_feature(enable = "avx2,fma")]
            pub fn $name(n: usize) -> __m256i {
                chains::<$m, $e>(n, $main, $extra)
            }
        };
    }

    kernel!(madd, 8, 0, |x| _mm256_madd_epi16(x, _mm256_set1_epi16(3)), |x| x);
    kernel!(maddubs, 8, 0, |x| _mm256_maddubs_epi16(x, _mm256_set1_epi8(3)), |x| x);
    kernel!(sign, 8, 0, |x| _mm256_sign_epi8(x, _mm256_set1_epi8(3)), |x| x);
    kernel!(madd_plus_sign, 8, 4, |x| _mm256_madd_epi16(x, _mm256_set1_epi16(3)), |x| {
        _mm256_sign_epi8(x, _mm256_set1_epi8(3))
    });
    kernel!(madd_plus_add, 8, 4, |x| _mm256_madd_epi16(x, _mm256_set1_epi16(3)), |x| {
        _mm256_add_epi32(x, _mm256_set1_epi16(3))
    });

    /// 8 chains of f32 FMAs, the f32 GEMM's instruction.
    #[target_feature(enable = "avx2,fma")]
    pub fn fma(n: usize) -> __m256 {
        let mut a: [__m256; 8] = std::array::from_fn(|i| _mm256_set1_ps(i as f32));
        let (b, c) = (_mm256_set1_ps(0.999), _mm256_set1_ps(0.001));
        for _ in 0..n {
            for x in a.iter_mut() {
                *x = _mm256_fmadd_ps(*x, b, c);
            }
        }
        a.iter().fold(_mm256_setzero_ps(), |s, x| _mm256_add_ps(s, *x))
    }
}

#[cfg(target_arch = "x86_64")]
fn main() {
    use std::hint::black_box;
    if !(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"))
    {
        println!("this CPU has no AVX2 and FMA");
        return;
    }
    let n = 50_000_000;
    // Instructions per nanosecond of a loop of `chains` chains.
    let time = |chains: usize, f: &dyn Fn()| {
        (chains * n) as f64 / deepcompress_benches::median_secs(5, f) / 1e9
    };
    // SAFETY: AVX2 and FMA were detected above.
    let rows: [(&str, f64); 6] = unsafe {
        [
            ("vfmadd231ps (f32 FMA)", time(8, &|| _ = black_box(x86::fma(n)))),
            ("vpmaddwd", time(8, &|| _ = black_box(x86::madd(n)))),
            ("vpmaddubsw", time(8, &|| _ = black_box(x86::maddubs(n)))),
            ("vpsignb", time(8, &|| _ = black_box(x86::sign(n)))),
            ("8 vpmaddwd + 4 vpsignb", time(12, &|| _ = black_box(x86::madd_plus_sign(n)))),
            ("8 vpmaddwd + 4 vpaddd", time(12, &|| _ = black_box(x86::madd_plus_add(n)))),
        ]
    };
    println!("instructions per ns, 8 or 12 independent chains (median of 5 runs):");
    for (name, rate) in rows {
        println!("  {name:<24} {rate:.2}");
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("x86-64 only");
}
