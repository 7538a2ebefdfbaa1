//! The x86-64 instructions the int8 kernels build on, and which of them this CPU has.
//!
//! Every primitive adds 32 signed-byte products, summed in groups of four, into 8 i32
//! lanes. Without VNNI that takes two multiplies and an add; with VNNI it is one
//! `vpdpbusd` (unsigned × signed bytes, no saturation), either the VEX form of AVX-VNNI
//! or the 256-bit EVEX form of AVX-512 VNNI (with AVX-512 VL).

/// The int8 instruction sets the kernels can use, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// `vpdpbusd` through AVX-512 VNNI + VL on 256-bit registers.
    Avx512Vnni,
    /// `vpdpbusd` through AVX-VNNI.
    AvxVnni,
    /// `vpmaddubsw` + `vpmaddwd` + `vpaddd`.
    Avx2,
    /// Plain loops.
    Portable,
}

impl Isa {
    /// The best this CPU supports, detected at run time (cached by the standard library).
    pub(crate) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") {
                if has!("avx512vnni") && has!("avx512vl") {
                    return Isa::Avx512Vnni;
                }
                if has!("avxvnni") {
                    return Isa::AvxVnni;
                }
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Every instruction set this CPU can run, best first: the tests run each kernel on
    /// each, so that a machine (or emulator) with VNNI checks the VNNI kernels too.
    #[cfg(test)]
    pub(crate) fn runnable() -> Vec<Self> {
        let mut all = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") {
                if has!("avx512vnni") && has!("avx512vl") {
                    all.push(Isa::Avx512Vnni);
                }
                if has!("avxvnni") {
                    all.push(Isa::AvxVnni);
                }
                all.push(Isa::Avx2);
            }
        }
        all.push(Isa::Portable);
        all
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::*;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 32 signed-byte products summed in pairs of pairs into 8 i32 lanes: `|a| * (b * sign
    /// a)` with `maddubs` (unsigned x signed bytes to i16 pairs), then `madd` with ones.
    /// `|a|` read as unsigned is right even for -128; `b` must stay within ±127, and then
    /// a pair of products (at most 2 · 128 · 127) cannot saturate i16.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn madd_i8(a: __m256i, b: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
        _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
    }

    /// `acc + Σ a·b` for signed `a` and `b` within ±127 (see [`madd_i8`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn dot_acc_avx2(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_add_epi32(acc, madd_i8(a, b))
    }

    /// `acc + Σ u·s` for unsigned bytes `u` and signed bytes `s` within ±64, with AVX2:
    /// `maddubs` then `madd` with ones, without [`madd_i8`]'s sign step. Exact because a
    /// pair of products stays within 2 · 255 · 64 = 32,640 (i16 saturates at 32,767); for
    /// weights quantized to 7 bits (onnxruntime's and fbgemm's "reduce range").
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn dpbusd_avx2_narrow(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(u, s);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// `acc + Σ u·s` for unsigned bytes `u` and signed bytes `s`, with AVX-VNNI.
    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub(crate) fn dpbusd_avxvnni(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, u, s)
    }

    /// `acc + Σ u·s` for unsigned bytes `u` and signed bytes `s`, with AVX-512 VNNI.
    #[inline]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub(crate) fn dpbusd_avx512vnni(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        _mm256_dpbusd_epi32(acc, u, s)
    }

    /// `acc + Σ a·b` for signed `a` and `b` within ±127 with AVX-VNNI: `vpdpbusd` on `|a|`
    /// and `b * sign a` (exact, as in [`madd_i8`], and without its saturation limit).
    #[inline]
    #[target_feature(enable = "avx2,avxvnni")]
    pub(crate) fn dot_acc_avxvnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        dpbusd_avxvnni(acc, _mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    /// [`dot_acc_avxvnni`] with AVX-512 VNNI.
    #[inline]
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub(crate) fn dot_acc_avx512vnni(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        dpbusd_avx512vnni(acc, _mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    /// [`dot_acc_avxvnni`] with `vpdpbusd` emulated (see [`dpbusd_emulated`]).
    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn dot_acc_emulated(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        dpbusd_emulated(acc, _mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a))
    }

    /// What `vpdpbusd` computes, with AVX2 only: the even and odd bytes of each 16-bit
    /// lane widened separately (unsigned and signed), two exact `madd`s. Slower than
    /// [`dot_acc_avx2`]; it exists so that the VNNI kernels' data layout and offset
    /// correction run in tests on CPUs without VNNI.
    #[cfg(test)]
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) fn dpbusd_emulated(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        let u_even = _mm256_and_si256(u, _mm256_set1_epi16(0x00FF));
        let u_odd = _mm256_srli_epi16(u, 8);
        let s_even = _mm256_srai_epi16(_mm256_slli_epi16(s, 8), 8);
        let s_odd = _mm256_srai_epi16(s, 8);
        let even = _mm256_madd_epi16(u_even, s_even);
        _mm256_add_epi32(acc, _mm256_add_epi32(even, _mm256_madd_epi16(u_odd, s_odd)))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// With `DEEPCOMPRESS_EXPECT_ISA` set (to `Avx512Vnni`, say, when testing on a VNNI
        /// machine), fail unless this CPU runs that instruction set: a run meant to test a VNNI
        /// kernel must not pass quietly on the AVX2 one.
        #[test]
        fn the_expected_instruction_set_is_runnable() {
            if let Ok(name) = std::env::var("DEEPCOMPRESS_EXPECT_ISA") {
                let all = super::super::Isa::runnable();
                assert!(
                    all.iter().any(|isa| format!("{isa:?}") == name),
                    "{name} was expected, this CPU runs {all:?}"
                );
            }
        }

        type Dpbusd = unsafe fn(__m256i, __m256i, __m256i) -> __m256i;

        /// `f(7, u, s)` against the exact sums of four products, for `s` within `±span`.
        fn check_dpbusd(name: &str, f: Dpbusd, span: i32) {
            let u: [u8; 32] =
                std::array::from_fn(|i| (i * 67 % 256) as u8 | (0x80 * (i % 2) as u8));
            let s: [i8; 32] =
                std::array::from_fn(|i| (i as i32 * 29 % (2 * span + 1) - span) as i8);
            let mut got = [0i32; 8];
            // SAFETY: the caller detected the instruction set `f` needs; loads and the
            // store are 32 bytes.
            unsafe {
                let r = f(
                    _mm256_set1_epi32(7),
                    _mm256_loadu_si256(u.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(s.as_ptr() as *const __m256i),
                );
                _mm256_storeu_si256(got.as_mut_ptr() as *mut __m256i, r);
            }
            for (l, g) in got.iter().enumerate() {
                let want: i32 =
                    7 + (0..4).map(|j| u[4 * l + j] as i32 * s[4 * l + j] as i32).sum::<i32>();
                assert_eq!(*g, want, "{name}, lane {l}");
            }
        }

        #[test]
        fn every_dpbusd_this_cpu_runs_is_the_exact_sum_of_four_products() {
            use std::arch::is_x86_feature_detected as has;
            if !has!("avx2") {
                return;
            }
            check_dpbusd("emulated", dpbusd_emulated, 128);
            check_dpbusd("avx2 narrow", dpbusd_avx2_narrow, 64);
            if has!("avxvnni") {
                check_dpbusd("avx-vnni", dpbusd_avxvnni, 128);
            }
            if has!("avx512vnni") && has!("avx512vl") {
                check_dpbusd("avx-512 vnni", dpbusd_avx512vnni, 128);
            }
        }
    }
}
