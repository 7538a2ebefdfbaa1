//! How many AVX2 multiply-type instructions this CPU retires per nanosecond, alone and
//! mixed: the ceiling of an exact int8 GEMM without VNNI. Each loop runs 8 independent
//! chains of one instruction (or two kinds alternating), so throughput, not latency,
//! decides. If two kinds mixed run no faster than either alone, they share execution
//! ports.
//!
//! Then the int8 GEMM's 4 x 2 micro-kernel loop on L1-resident data with three
//! instruction mixes per 32 products: the exact one our kernel uses (`vpsignb` twice,
//! `vpmaddubsw`, `vpmaddwd`, `vpaddd`), the same without the sign step (unsigned x signed
//! bytes as MLAS's AVX2 kernel multiplies them, which can saturate), and operands widened
//! to i16 beforehand (`vpmaddwd`, `vpaddd`). Cycles are counted at the clock the FMA loop
//! implies (two FMAs per cycle).
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

    /// `reps` passes of the GEMM's 4 x 2 tile over the register steps of 4 interleaved
    /// weight rows `w` and 2 input rows `x` (L1-resident); `dot(acc, x, w)` is one
    /// multiply-accumulate of a register pair.
    #[inline(always)]
    fn tile_loop(
        w: &[__m256i],
        x: &[__m256i],
        reps: usize,
        dot: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
    ) -> __m256i {
        // SAFETY (all intrinsics here): only called from functions compiled for AVX2,
        // after it was detected.
        let mut v = [[unsafe { _mm256_setzero_si256() }; 2]; 4];
        for _ in 0..reps {
            for (xs, ws) in x.chunks_exact(2).zip(w.chunks_exact(4)) {
                for (va, &wa) in v.iter_mut().zip(ws) {
                    for (vab, &xb) in va.iter_mut().zip(xs) {
                        *vab = dot(*vab, xb, wa);
                    }
                }
            }
        }
        v.iter()
            .flatten()
            .fold(unsafe { _mm256_setzero_si256() }, |s, x| unsafe { _mm256_xor_si256(s, *x) })
    }

    /// The exact signed-byte step of our kernel (the sign trick).
    #[target_feature(enable = "avx2")]
    pub fn tile_exact(w: &[__m256i], x: &[__m256i], reps: usize) -> __m256i {
        tile_loop(w, x, reps, |acc, x, w| {
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(w, x));
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        })
    }

    /// Unsigned x signed bytes without the sign step (saturates when both are large).
    #[target_feature(enable = "avx2")]
    pub fn tile_unsigned(w: &[__m256i], x: &[__m256i], reps: usize) -> __m256i {
        tile_loop(w, x, reps, |acc, x, w| {
            let pairs = _mm256_maddubs_epi16(x, w);
            _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        })
    }

    /// Operands already widened to i16: 16 products per register.
    #[target_feature(enable = "avx2")]
    pub fn tile_i16(w: &[__m256i], x: &[__m256i], reps: usize) -> __m256i {
        tile_loop(w, x, reps, |acc, x, w| _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)))
    }

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
    for (name, rate) in &rows {
        println!("  {name:<24} {rate:.2}");
    }

    // The micro-kernel: 64 steps of a 4 x 2 tile (12 KiB of bytes, 24 KiB as i16), in L1.
    use std::arch::x86_64::__m256i;
    let regs = |n: usize, seed: usize| -> Vec<__m256i> {
        (0..n)
            .map(|i| {
                let b: [i8; 32] = std::array::from_fn(|j| ((i * 37 + j * 11 + seed) % 255) as i8);
                // SAFETY: a 32-byte array read as one register.
                unsafe { std::mem::transmute::<[i8; 32], __m256i>(b) }
            })
            .collect()
    };
    let (steps, reps) = (64, 100_000);
    let (w8, x8) = (regs(4 * steps, 1), regs(2 * steps, 2));
    let (w16, x16) = (regs(8 * steps, 3), regs(4 * steps, 4));
    let ghz = rows[0].1 / 2.0;
    let per_step = |products_per_reg: usize, regs_per_rep: usize, secs: f64| {
        let products = (products_per_reg * regs_per_rep * reps) as f64;
        secs / products * 256.0 * 1e9 * ghz
    };
    // SAFETY: AVX2 was detected above.
    let tiles: [(&str, f64); 3] = unsafe {
        let t = |f: &dyn Fn()| deepcompress_benches::median_secs(11, f);
        [
            (
                "exact (sign step)",
                per_step(32, 8 * steps, t(&|| _ = black_box(x86::tile_exact(&w8, &x8, reps)))),
            ),
            (
                "unsigned x signed, no sign step",
                per_step(32, 8 * steps, t(&|| _ = black_box(x86::tile_unsigned(&w8, &x8, reps)))),
            ),
            (
                "i16 operands",
                per_step(16, 16 * steps, t(&|| _ = black_box(x86::tile_i16(&w16, &x16, reps)))),
            ),
        ]
    };
    println!(
        "int8 GEMM 4 x 2 micro-kernel on L1-resident data, cycles per 256 products at {ghz:.2} GHz \
         (the multiplies alone need 8):"
    );
    for (name, cycles) in tiles {
        println!("  {name:<32} {cycles:.1}");
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    println!("x86-64 only");
}
